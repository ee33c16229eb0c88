from django.db.models import Prefetch, QuerySet

from apps.accounts.permissions import service_filter
from apps.catalog.constants import ActionKind
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


def verify_action(*, service: Service, environment) -> Action | None:
    """The service's verify action offered on the environment (e.g. a smoke test)."""
    return (
        service.actions.filter(kind=ActionKind.VERIFY, environments=environment)
        .order_by("position", "pk")
        .first()
    )


def deploy_action(*, service: Service, environment) -> Action | None:
    """The service's deploy action with a version field, offered on the environment."""
    return (
        service.actions.filter(kind=ActionKind.DEPLOY, environments=environment)
        .exclude(version_field="")
        .order_by("position", "pk")
        .first()
    )


def rollback_actions(*, service: Service, environment) -> list[Action]:
    """What can roll the service back on the environment, in the order it is offered: the
    deploy action (any earlier version), then the rollback actions (the version before)."""
    deploy = deploy_action(service=service, environment=environment)
    rollbacks = service.actions.filter(kind=ActionKind.ROLLBACK, environments=environment)
    return [a for a in (deploy, *rollbacks.order_by("position", "pk")) if a]
