"""The incidents of a run's page and of a service's page (the runs and the catalog
apps load this library by name: they do not import the incidents app)."""

from django import template

from apps.accounts.constants import Role
from apps.accounts.permissions import can_view
from apps.catalog.constants import ActionKind
from apps.incidents.models import Incident
from apps.runs.constants import RunStatus

register = template.Library()


@register.inclusion_tag("incidents/_run.html", takes_context=True)
def run_incidents(context, run):
    user = context["request"].user
    reports = (
        run.status == RunStatus.SUCCESSFUL
        and not run.check_mode
        and run.action_kind in (ActionKind.DEPLOY, ActionKind.ROLLBACK)
        and getattr(user, "role", None) != Role.AUDITOR
    )
    return {
        "run": run,
        "incidents": list(Incident.objects.filter(run=run).order_by("-opened_at")),
        "may_report": reports,
        "request": context["request"],
        "csrf_token": context.get("csrf_token"),
    }


@register.inclusion_tag("incidents/_service.html", takes_context=True)
def open_incidents(context, service):
    """The open incidents of `service` on the environments the user may see."""
    user = context["request"].user
    found = (
        Incident.objects.filter(service=service, resolved_at__isnull=True)
        .select_related("environment", "run")
        .order_by("-opened_at")
    )
    return {
        "incidents": [
            i for i in found if can_view(user, service=service, environment=i.environment)
        ],
        "request": context["request"],
        "csrf_token": context.get("csrf_token"),
    }
