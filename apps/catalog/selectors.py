from django.db.models import Prefetch, QuerySet

from apps.accounts.permissions import service_filter
from apps.catalog.models import Action, Service


def service_list(*, user) -> QuerySet[Service]:
    """Services the user may see, with their actions and each action's environments."""
    return Service.objects.filter(service_filter(user)).prefetch_related(
        Prefetch(
            "actions",
            queryset=Action.objects.select_related("playbook_version").prefetch_related(
                "environments"
            ),
        )
    )


def action_get(*, service_slug: str, action_slug: str) -> Action | None:
    return (
        Action.objects.select_related("service", "playbook_version__source")
        .filter(service__slug=service_slug, slug=action_slug)
        .first()
    )
