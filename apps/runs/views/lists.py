"""The runs list: filters, a run number to open, pages."""

from datetime import date, datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.utils.functional import cached_property

from apps.accounts.permissions import environment_filter, service_filter
from apps.audit.constants import Via
from apps.catalog.filters import ServiceFilterForm
from apps.catalog.models import Action, Service
from apps.environments.models import Environment
from apps.runs import selectors, services
from apps.runs.constants import RunStatus


class RunPaginator(Paginator):
    """Counts the runs up to CAP only: past it the list says "of 400+" pages. Counting
    every run a person may see is a pass over most of the table on each page (57 ms of
    PostgreSQL's at 100,000 runs); beyond 10,000 runs the filters (dates, service,
    commit) find a run sooner than paging does."""

    CAP = 10_000

    @cached_property
    def _counted(self) -> int:
        return self.object_list[: self.CAP + 1].count()

    @property
    def count(self) -> int:
        return min(self._counted, self.CAP)

    @property
    def capped(self) -> bool:
        return self._counted > self.CAP


def _wanted_run(request, wanted: str, errors: dict):
    """`?run=N`: the run to open, or None with the reason in `errors` and its status."""
    if not (wanted.isascii() and wanted.isdigit()) or len(wanted) > 12:
        errors["run"] = "A run number is digits only, e.g. 42."
        return None, 400
    run = services.run_for(user=request.user, run_id=int(wanted), request=request, via=Via.WEB)
    if run is None:  # none, or hidden from this user: the same answer
        errors["run"] = f"There is no run #{wanted}."
        return None, 404
    return run, 200


def _period(filters: dict, zone, errors: dict) -> tuple:
    """The first and the last day asked for, as instants in `zone`: (since, until)."""
    days = {}
    for name in ("from", "to"):
        try:
            days[name] = date.fromisoformat(filters[name]) if filters[name] else None
        except ValueError:
            errors[name] = "A day is written YYYY-MM-DD, e.g. 2026-01-31."
            days[name] = None
    if days["from"] and days["to"] and days["from"] > days["to"]:
        errors["to"] = "The last day is before the first."
        days["to"] = None
    for name, day in days.items():
        if day and not (1900 <= day.year <= 9998):
            errors[name] = "Enter a year from 1900 to 9998."
            days[name] = None
    midnight = datetime.min.time()
    since = days["from"] and datetime.combine(days["from"], midnight, tzinfo=zone)
    until = days["to"] and datetime.combine(days["to"] + timedelta(days=1), midnight, tzinfo=zone)
    return since, until


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name[:64] or "UTC")
    except (ValueError, OSError, ZoneInfoNotFoundError):
        return ZoneInfo("UTC")


def _actions(user) -> list[tuple[str, str]]:
    """The actions to filter by, (slug, label), one per slug among the services the user
    may see: "Deploy" of every service is one choice."""
    actions = Action.objects.filter(service__in=Service.objects.filter(service_filter(user)))
    labels: dict[str, str] = {}
    for slug, label in actions.order_by("label", "slug").values_list("slug", "label"):
        labels.setdefault(slug, label)
    return sorted(labels.items(), key=lambda item: (item[1].lower(), item[0]))


@login_required
def run_list(request):
    """Runs the user may see, filtered by service, environment, action, status, user, commit,
    a search of the service's name and description, its team, "my services" (`mine`)
    and days
    (in the reader's time zone `tz`, which portal.js fills in; UTC without it). `?run=N`
    opens run N, or says here that there is none or why the user may not see it."""
    get = request.GET
    errors: dict[str, str] = {}
    status = 200
    wanted = get.get("run", "").strip().removeprefix("#")
    if wanted:
        run, status = _wanted_run(request, wanted, errors)
        if run is not None:
            return redirect(run)
    names = ("service", "environment", "action", "status", "user", "commit", "from", "to")
    filters = {name: get.get(name, "").strip() for name in names}
    zone = _zone(get.get("tz", ""))
    since, until = _period(filters, zone, errors)
    if errors.keys() & {"from", "to"}:
        status = 400
    # Search, team and "mine", as the catalog narrows services.
    services_form = ServiceFilterForm(get, environments=None)
    if not services_form.is_valid():
        status = 400
    narrowed = services_form.filters()
    runs = selectors.run_list(
        user=request.user,
        filters={
            **filters,
            "since": since,
            "until": until,
            "text": narrowed["text"],
            "team": narrowed["team"],
            "mine": narrowed["mine"],
        },
    ).select_related("firing__schedule")  # the runs a schedule launched say so
    page = RunPaginator(runs, 25).get_page(get.get("page"))
    kept = {k: v for k, v in filters.items() if v}
    if narrowed["text"]:
        kept["q"] = narrowed["text"]
    if narrowed["team"]:
        kept["team"] = narrowed["team"].slug
    if narrowed["mine"]:
        kept["mine"] = "1"
    if kept.keys() & {"from", "to"}:
        kept["tz"] = str(zone)
    return render(
        request,
        "runs/run_list.html",
        {
            "page": page,
            "filters": filters,
            "services_form": services_form,
            "wanted": wanted,
            "errors": errors,
            "zone": zone,
            "query": urlencode(kept),
            "statuses": RunStatus.choices,
            "services": Service.objects.filter(service_filter(request.user)).order_by("name"),
            "actions": _actions(request.user),
            "environments": Environment.objects.filter(environment_filter(request.user)),
        },
        status=status,
    )
