"""The four keys (and rework) from the run history, with database aggregates only: every
figure is a count, or a duration read at its rank in an ordered query (median and 90th
percentile), never a loop over runs in Python.

Definitions, as the DORA guide words them and as the insights page prints them:

- Deployment frequency: how often the team deploys to the environment successfully.
- Lead time for changes: from the commit (the launch's provenance) to its successful
  deploy on the environment; without provenance, from the version's first deploy
  anywhere.
- Change failure rate: the share of deploys that needed remediation: rolled back,
  their verification failed, or an incident was opened against them.
- Failed deployment recovery time: from a failed deploy to the next successful deploy
  or rollback there.
- Deployment rework rate: the share of deploys that were unplanned: rollbacks, and the
  deploys that recovered a failed one.
"""

import math
from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import (
    Count,
    DateTimeField,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Coalesce, TruncWeek
from django.utils import timezone

from apps.catalog.constants import ActionKind
from apps.incidents.models import Incident
from apps.runs.constants import RunStatus
from apps.runs.models import Run

WINDOWS = (7, 30, 90)
# A rollback: by a rollback action, or by the deploy action putting back an earlier version.
ROLLBACKS = Q(rollback_of__isnull=False) | Q(action_kind=ActionKind.ROLLBACK)
DAY = timedelta(days=1)

DEFINITIONS = {
    "deployment_frequency": "How often the team deploys successfully to the environment.",
    "lead_time": "From the commit a deploy carries (its build's provenance) to its successful "
    "deploy on the environment; without provenance, from the version's first deploy "
    "anywhere.",
    "change_failure_rate": "The share of deploys that needed remediation: rolled back, their "
    "verification failed, or an incident was opened against them.",
    "recovery_time": "Failed deployment recovery time: from a failed deploy to the next "
    "successful deploy or rollback on the environment.",
    "rework_rate": "Deployment rework rate: the share of deploys that were unplanned: "
    "rollbacks, and the deploys that recovered a failed one.",
}


@dataclass
class Figures:
    window_days: int
    deploys: int
    per_day: float
    per_week: float
    frequency_band: str
    lead_time_median: timedelta | None
    lead_time_p90: timedelta | None
    lead_time_band: str
    lead_time_from_commits: int  # how many of the lead times start at a commit
    failed: int
    change_failure_rate: float | None
    change_failure_band: str
    recovery_median: timedelta | None
    recovery_p90: timedelta | None
    recovery_band: str
    unplanned: int
    rework_rate: float | None
    weeks: list[dict] = field(default_factory=list)


def _successful(environment, services) -> QuerySet[Run]:
    return Run.objects.filter(
        environment=environment,
        service__in=services,
        status=RunStatus.SUCCESSFUL,
        check_mode=False,
    )


def _changes(environment, services, since, until) -> QuerySet[Run]:
    """Successful deploys and rollbacks there in the window."""
    return _successful(environment, services).filter(
        action_kind__in=(ActionKind.DEPLOY, ActionKind.ROLLBACK),
        finished_at__gte=since,
        finished_at__lt=until,
    )


def _failed_q() -> Q:
    """A deploy (a Run row, in the outer query) that needed remediation."""
    rolled_back = Run.objects.filter(rollback_of=OuterRef("pk"))
    verification_failed = Run.objects.filter(
        service=OuterRef("service"),
        environment=OuterRef("environment"),
        action_kind=ActionKind.VERIFY,
        check_mode=False,
        status__in=(RunStatus.FAILED, RunStatus.TIMED_OUT),
        version=OuterRef("version"),
        created_at__gte=OuterRef("finished_at"),
    )
    incident = Incident.objects.filter(run=OuterRef("pk"))
    return Q(Exists(rolled_back)) | Q(Exists(verification_failed)) | Q(Exists(incident))


def _ranked(durations: QuerySet, name: str) -> tuple[timedelta | None, timedelta | None]:
    """The median and 90th percentile of `name`, read at their ranks (nearest rank)."""
    ordered = durations.exclude(**{f"{name}__isnull": True}).order_by(name)
    count = ordered.count()
    if not count:
        return None, None

    def at(share: float) -> timedelta:
        rank = min(count, max(1, math.ceil(share * count))) - 1
        return ordered.values_list(name, flat=True)[rank]

    return at(0.5), at(0.9)


def _lead_times(deploys: QuerySet[Run]) -> QuerySet:
    first_anywhere = (
        Run.objects.filter(
            service=OuterRef("service"),
            version=OuterRef("version"),
            status=RunStatus.SUCCESSFUL,
            check_mode=False,
            action_kind=ActionKind.DEPLOY,
        )
        .order_by()
        .values("service")
        .annotate(first=Min("created_at"))
        .values("first")[:1]
    )
    start = Coalesce(
        F("source_committed_at"), Subquery(first_anywhere, output_field=DateTimeField())
    )
    return deploys.exclude(version="").annotate(
        lead=ExpressionWrapper(F("finished_at") - start, output_field=DurationField())
    )


def _recoveries(failed: QuerySet[Run]) -> QuerySet:
    """Each failed deploy with the time to the next successful change of its service on
    its environment (None: not recovered yet)."""
    next_change = (
        Run.objects.filter(
            service=OuterRef("service"),
            environment=OuterRef("environment"),
            status=RunStatus.SUCCESSFUL,
            check_mode=False,
            action_kind__in=(ActionKind.DEPLOY, ActionKind.ROLLBACK),
            finished_at__gt=OuterRef("finished_at"),
        )
        .order_by("finished_at")
        .values("finished_at")[:1]
    )
    return failed.annotate(
        recovered_at=Subquery(next_change, output_field=DateTimeField())
    ).annotate(
        recovery=ExpressionWrapper(
            F("recovered_at") - F("finished_at"), output_field=DurationField()
        )
    )


def _band_frequency(per_day: float) -> str:
    if per_day >= 1:
        return "Elite"
    if per_day >= 1 / 7:
        return "High"
    if per_day >= 1 / 30:
        return "Medium"
    return "Low"


def _band_duration(value: timedelta | None, elite, high, medium) -> str:
    if value is None:
        return ""
    if value < elite:
        return "Elite"
    if value < high:
        return "High"
    if value < medium:
        return "Medium"
    return "Low"


def _band_rate(rate: float | None) -> str:
    if rate is None:
        return ""
    for limit, band in ((0.05, "Elite"), (0.10, "High"), (0.15, "Medium")):
        if rate <= limit:
            return band
    return "Low"


def _weeks(changes: QuerySet[Run], failed_q: Q) -> list[dict]:
    rows = (
        changes.filter(action_kind=ActionKind.DEPLOY, rollback_of__isnull=True)
        .annotate(week=TruncWeek("finished_at"))
        .values("week")
        .order_by("week")
        .annotate(
            deploys=Count("pk"),
            failed=Count("pk", filter=failed_q),
        )
    )
    return [
        {"week": row["week"].date() if hasattr(row["week"], "date") else row["week"],
         "deploys": row["deploys"], "failed": row["failed"]}
        for row in rows
    ]  # fmt: skip


def figures(*, environment, services, days: int = 30, now=None) -> Figures:
    """The keys of `services` on `environment` over the last `days` days."""
    until = now or timezone.now()
    since = until - days * DAY
    changes = _changes(environment, services, since, until)
    deploys = changes.filter(action_kind=ActionKind.DEPLOY, rollback_of__isnull=True)
    count = deploys.count()
    failed_q = _failed_q()
    failed = deploys.filter(failed_q)
    failed_count = failed.count()
    lead_median, lead_p90 = _ranked(_lead_times(deploys), "lead")
    recovery_median, recovery_p90 = _ranked(_recoveries(failed), "recovery")
    rollbacks = changes.filter(ROLLBACKS).count()
    recovered_by_deploy = _recovered(deploys)
    unplanned = rollbacks + recovered_by_deploy
    total = count + rollbacks
    per_day = count / days
    return Figures(
        window_days=days,
        deploys=count,
        per_day=per_day,
        per_week=per_day * 7,
        frequency_band=_band_frequency(per_day),
        lead_time_median=lead_median,
        lead_time_p90=lead_p90,
        lead_time_band=_band_duration(lead_median, DAY, 7 * DAY, 30 * DAY),
        lead_time_from_commits=deploys.filter(source_committed_at__isnull=False).count(),
        failed=failed_count,
        change_failure_rate=failed_count / count if count else None,
        change_failure_band=_band_rate(failed_count / count if count else None),
        recovery_median=recovery_median,
        recovery_p90=recovery_p90,
        recovery_band=_band_duration(recovery_median, timedelta(hours=1), DAY, 7 * DAY),
        unplanned=unplanned,
        rework_rate=unplanned / total if total else None,
        weeks=_weeks(changes, failed_q),
    )


def _recovered(deploys: QuerySet[Run]) -> int:
    """How many of `deploys` recovered a failed deploy: the change of their service there
    just before them (one indexed lookup each) is a deploy that failed."""
    previous_change = (
        Run.objects.filter(
            service=OuterRef("service"),
            environment=OuterRef("environment"),
            status=RunStatus.SUCCESSFUL,
            check_mode=False,
            action_kind__in=(ActionKind.DEPLOY, ActionKind.ROLLBACK),
            finished_at__lt=OuterRef("finished_at"),
        )
        .order_by("-finished_at")
        .values("pk")[:1]
    )
    failed_before = Run.objects.filter(
        pk=OuterRef("previous"), action_kind=ActionKind.DEPLOY, rollback_of__isnull=True
    ).filter(_failed_q())
    return (
        deploys.annotate(previous=Subquery(previous_change)).filter(Exists(failed_before)).count()
    )
