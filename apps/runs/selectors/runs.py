"""Runs a user may see: the list with its filters, and one run."""

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet

from apps.accounts.permissions import mine_filter, run_filter, run_view_refusal
from apps.catalog.models import Service
from apps.runs.models import Run


def run_list(*, user, filters: dict | None = None) -> QuerySet[Run]:
    """Runs the user may see, newest first, narrowed by service, environment, action (its
    slug), status and user (slugs and a username), the build's commit (a prefix of its SHA), and by
    creation time: `since` (included) and `until` (excluded), aware datetimes; and as the
    catalog narrows services: `text` in the service's name or description, its `team` (a
    Team) and `mine` (the user's own services, `mine_filter`)."""
    runs = (
        Run.objects.select_related(
            "service", "environment", "rollback_of", "promoted_from", "action"
        )
        .filter(run_filter(user))
        .order_by("-id")
    )
    filters = filters or {}
    if filters.get("service"):
        runs = runs.filter(service__slug=filters["service"])
    if filters.get("text"):
        text = filters["text"]
        runs = runs.filter(
            service__in=Service.objects.filter(
                Q(name__icontains=text) | Q(slug__icontains=text) | Q(description__icontains=text)
            )
        )
    if filters.get("team"):
        runs = runs.filter(service__team=filters["team"])
    # An empty filter (the user may run every service somewhere) narrows nothing.
    if filters.get("mine") and (mine := mine_filter(user)):
        runs = runs.filter(service__in=Service.objects.filter(mine))
    if filters.get("environment"):
        runs = runs.filter(environment__slug=filters["environment"])
    if filters.get("action"):
        runs = runs.filter(action_slug=filters["action"])
    if filters.get("status"):
        runs = runs.filter(status=filters["status"])
    if filters.get("user"):
        runs = runs.filter(requested_by_name=filters["user"])
    if filters.get("commit"):
        runs = runs.filter(source_commit__startswith=filters["commit"].lower())
    if filters.get("since"):
        runs = runs.filter(created_at__gte=filters["since"])
    if filters.get("until"):
        runs = runs.filter(created_at__lt=filters["until"])
    return runs


# What a run's page and each poll read with it (Run again asks about its action). Not
# more: PostgreSQL plans each join of the query every time, and with the playbook's
# version and source and the schedule's firing (8 tables) planning took 3-16 ms where
# running it took 0.2. The few that need those (the facts of a scheduled run, a running
# run's task total) read them apart, by primary key.
PAGE_RELATED = ("service", "environment", "action")
# What the API's answer names (apps/runs/api/serializers.py, RunSerializer): the slugs of
# its service and environments, the schedule that launched it (a reply polled every second
# by `pushbutton wait`; the page's eight-table join was half the read's cost).
API_RELATED = ("service", "environment", "promoted_from", "firing__schedule")


def run_get(*, user, run_id: int, related: tuple[str, ...] = PAGE_RELATED) -> Run | None:
    """The run, with the `related` rows (select_related), or None when there is none;
    PermissionDenied (with the reason) when the user may not see it."""
    try:
        # get(), not first(): one row by its key needs no ORDER BY (nor its compiling).
        run = Run.objects.select_related(*related).get(pk=run_id)
    except Run.DoesNotExist:
        return None
    if reason := run_view_refusal(user, run):
        raise PermissionDenied(reason)
    return run
