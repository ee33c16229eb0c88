"""The four keys (and rework) from the change rows (apps/insights/models.Change, kept in
step with the runs by apps/insights/changes.py): every figure is a count over one index
range, or a duration read at its rank (median and 90th percentile: PostgreSQL's
percentile_disc, one ordered read elsewhere), never a loop over runs in Python.

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

from django.db import connection
from django.db.models import Aggregate, Count, DurationField, Q, QuerySet
from django.db.models.functions import TruncWeek
from django.utils import timezone

from apps.insights.models import Change, ChangeKind

WINDOWS = (7, 30, 90)
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


class _Percentile(Aggregate):
    """PostgreSQL's nearest-rank percentile: the first value whose share reaches `share`."""

    function = "PERCENTILE_DISC"
    template = "%(function)s(%(share)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = DurationField()

    def __init__(self, expression, share: float):
        super().__init__(expression, share=share)


def _ranked(rows: QuerySet[Change], name: str) -> tuple[timedelta | None, timedelta | None]:
    """The median and 90th percentile of `name`, read at their ranks (nearest rank)."""
    rows = rows.filter(**{f"{name}__isnull": False})
    if connection.vendor == "postgresql":
        got = rows.aggregate(median=_Percentile(name, 0.5), p90=_Percentile(name, 0.9))
        return got["median"], got["p90"]
    ordered = rows.order_by(name)
    count = ordered.count()
    if not count:
        return None, None

    def at(share: float) -> timedelta:
        rank = min(count, max(1, math.ceil(share * count))) - 1
        return ordered.values_list(name, flat=True)[rank]

    return at(0.5), at(0.9)


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


def _weeks(deploys: QuerySet[Change]) -> list[dict]:
    rows = (
        deploys.annotate(week=TruncWeek("finished_at"))
        .values("week")
        .order_by("week")
        .annotate(deploys=Count("pk"), failed=Count("pk", filter=Q(failed=True)))
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
    changes = Change.objects.filter(
        environment=environment,
        service__in=services,
        finished_at__gte=since,
        finished_at__lt=until,
    )
    deploys = changes.filter(kind=ChangeKind.DEPLOY)
    counts = changes.aggregate(
        deploys=Count("pk", filter=Q(kind=ChangeKind.DEPLOY)),
        failed=Count("pk", filter=Q(kind=ChangeKind.DEPLOY, failed=True)),
        rollbacks=Count("pk", filter=Q(kind=ChangeKind.ROLLBACK)),
        recovers=Count("pk", filter=Q(kind=ChangeKind.DEPLOY, recovers=True)),
        from_commits=Count("pk", filter=Q(kind=ChangeKind.DEPLOY, from_commit=True)),
    )
    count, failed_count = counts["deploys"], counts["failed"]
    lead_median, lead_p90 = _ranked(deploys, "lead")
    recovery_median, recovery_p90 = _ranked(deploys.filter(failed=True), "recovery")
    unplanned = counts["rollbacks"] + counts["recovers"]
    total = count + counts["rollbacks"]
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
        lead_time_from_commits=counts["from_commits"],
        failed=failed_count,
        change_failure_rate=failed_count / count if count else None,
        change_failure_band=_band_rate(failed_count / count if count else None),
        recovery_median=recovery_median,
        recovery_p90=recovery_p90,
        recovery_band=_band_duration(recovery_median, timedelta(hours=1), DAY, 7 * DAY),
        unplanned=unplanned,
        rework_rate=unplanned / total if total else None,
        weeks=_weeks(deploys),
    )
