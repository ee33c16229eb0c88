"""The insights page (overall, per team, per service) and GET /api/v1/insights/ (JSON,
or CSV with ?output=csv): the four keys and rework, over 7, 30 or 90 days, on one
environment (production by default)."""

import csv
import io

from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import render
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.decorators import api_view
from rest_framework.response import Response

from apps.accounts.models import Team
from apps.accounts.permissions import environment_filter, service_filter
from apps.catalog.models import Service
from apps.environments.models import Environment
from apps.insights.dora import DEFINITIONS, WINDOWS, Figures, figures


class ScopeError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field, self.message = field, message


def _visible_services(user) -> QuerySet[Service]:
    """The services the user may see: names for the page's choice, ids for the figures
    (not the catalog's service_list, which brings each one's actions along)."""
    return Service.objects.filter(service_filter(user)).order_by("name")


def _scope(request, query) -> tuple[Environment, QuerySet, dict]:
    """The environment, the services and what was chosen, from the query; ScopeError
    naming the field for a bad value."""
    environments = Environment.objects.filter(environment_filter(request.user)).order_by("order")
    slug = query.get("environment", "")
    if slug:
        environment = environments.filter(slug=slug).first()
        if environment is None:
            raise ScopeError("environment", f"No environment {slug!r} you may see.")
    else:
        environment = environments.filter(slug="production").first() or environments.last()
    if environment is None:
        raise ScopeError("environment", "You may see no environment.")
    try:
        days = int(query.get("days") or 30)
    except ValueError:
        days = 0
    if days not in WINDOWS:
        raise ScopeError("days", f"Choose {', '.join(map(str, WINDOWS))} days.")
    services = _visible_services(request.user)
    chosen = {"environment": environment, "days": days, "service": None, "team": None}
    if slug := query.get("service", ""):
        services = services.filter(slug=slug)
        if not services.exists():
            raise ScopeError("service", f"No service {slug!r} you may see.")
        chosen["service"] = services.first()
    elif slug := query.get("team", ""):
        team = Team.objects.filter(slug=slug).first()
        if team is None:
            raise ScopeError("team", f"No team {slug!r}.")
        services, chosen["team"] = services.filter(team=team), team
    return environment, services, chosen


def _seconds(value):
    return None if value is None else round(value.total_seconds(), 1)


def as_json(result: Figures, chosen: dict) -> dict:
    return {
        "environment": chosen["environment"].slug,
        "days": result.window_days,
        "service": chosen["service"].slug if chosen["service"] else None,
        "team": chosen["team"].slug if chosen["team"] else None,
        "deployment_frequency": {
            "deploys": result.deploys,
            "per_day": round(result.per_day, 3),
            "per_week": round(result.per_week, 2),
            "band": result.frequency_band,
        },
        "lead_time": {
            "median_seconds": _seconds(result.lead_time_median),
            "p90_seconds": _seconds(result.lead_time_p90),
            "from_commits": result.lead_time_from_commits,
            "band": result.lead_time_band,
        },
        "change_failure_rate": {
            "failed": result.failed,
            "rate": result.change_failure_rate,
            "band": result.change_failure_band,
        },
        "recovery_time": {
            "median_seconds": _seconds(result.recovery_median),
            "p90_seconds": _seconds(result.recovery_p90),
            "band": result.recovery_band,
        },
        "rework_rate": {"unplanned": result.unplanned, "rate": result.rework_rate},
        "weeks": [
            {"week": str(w["week"]), "deploys": w["deploys"], "failed": w["failed"]}
            for w in result.weeks
        ],
        "definitions": DEFINITIONS,
    }


def _csv(data: dict) -> HttpResponse:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["figure", "value", "median_seconds", "p90_seconds", "band"])
    freq, lead = data["deployment_frequency"], data["lead_time"]
    cfr, rec, rework = data["change_failure_rate"], data["recovery_time"], data["rework_rate"]
    writer.writerow(["deploys_per_day", freq["per_day"], "", "", freq["band"]])
    writer.writerow(["lead_time", "", lead["median_seconds"], lead["p90_seconds"], lead["band"]])
    writer.writerow(["change_failure_rate", cfr["rate"], "", "", cfr["band"]])
    writer.writerow(["recovery_time", "", rec["median_seconds"], rec["p90_seconds"], rec["band"]])
    writer.writerow(["rework_rate", rework["rate"], "", "", ""])
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="insights.csv"'
    return response


@login_required
def insights_page(request):
    try:
        environment, services, chosen = _scope(request, request.GET)
    except ScopeError as exc:
        return render(request, "insights/dora.html", {"error": exc, "section": "dora"},
                      status=400)  # fmt: skip
    result = figures(environment=environment, services=services, days=chosen["days"])
    return render(
        request,
        "insights/dora.html",
        {
            "figures": result,
            "chosen": chosen,
            "definitions": DEFINITIONS,
            "windows": WINDOWS,
            "environments": Environment.objects.filter(environment_filter(request.user)),
            "teams": Team.objects.order_by("name"),
            "services": _visible_services(request.user).only("slug", "name"),
            "section": "dora",
        },
    )


@extend_schema(
    parameters=[
        OpenApiParameter("environment", str, description="Default: production."),
        OpenApiParameter("days", int, enum=list(WINDOWS), description="Default: 30."),
        OpenApiParameter("service", str),
        OpenApiParameter("team", str),
        OpenApiParameter("output", str, enum=["json", "csv"], description="csv: a CSV file."),
    ],
    description="Deployment frequency, lead time, change failure rate, failed deployment "
    "recovery time and rework rate of the services you may see (or one, or a team's), with "
    "their DORA performance bands and a trend per week.",
)
@api_view(["GET"])
def insights_api(request):
    try:
        environment, services, chosen = _scope(request, request.query_params)
    except ScopeError as exc:
        return Response({"detail": exc.message, "errors": {exc.field: [exc.message]}}, status=400)
    data = as_json(figures(environment=environment, services=services, days=chosen["days"]), chosen)
    if request.query_params.get("output") == "csv":
        return _csv(data)
    return Response(data)
