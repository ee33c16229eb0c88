"""The portal's figures for Prometheus (`/metrics`), read from the database at each scrape.

The portal runs as several processes: web processes, and Celery workers on other hosts.
A counter kept in one process's memory would tell only that process's part, and vanish
with it. So nothing here counts events in memory: a collector asks the database when
Prometheus scrapes (docs/monitoring.md says how, and what it costs). What only a worker
sees while it runs (how long storing a batch of events took) is written onto the run as
it happens (Run.ingest_batches, Run.ingest_seconds) and added up here like the rest.

Two figures would otherwise read a whole table at each scrape, and need not: a run that
ended more than SETTLED_AFTER ago no longer changes, nor does an audit row ever. So each
process adds those up once (at its first scrape), keeps the sums, and from then on adds
only what settled since (a range of the index on finished_at; ids above the last one
counted), beside the runs still going or just ended (that index again).
"""

import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, FloatField, Func, Max, Min, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector, CollectorRegistry

from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_checkpoint_latest, audit_verification_latest
from apps.catalog.models import Service
from apps.environments.models import Environment
from apps.runs.constants import RefusalKind, RunStatus
from apps.runs.models import Run
from apps.workers.selectors import live_queues

# Upper bounds of the run duration histogram's buckets, in seconds (+Inf is added).
DURATION_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600)
# A refusal recorded before refusals kept their kind.
REFUSAL_OTHER = "other"
PENDING = (RunStatus.QUEUED, RunStatus.WAITING)
# A run that ended longer ago than this is settled: nothing writes its row any more.
SETTLED_AFTER = timedelta(minutes=10)
# Ended "later than now" on a host whose clock runs ahead: counted up to this far ahead.
FUTURE = timedelta(days=1)
# What this process has added up of the settled runs and of the audit log's refusals.
_kept_lock = threading.Lock()
_kept: dict = {}


def metrics_kept_clear() -> None:
    """Forget the sums kept (the database was emptied or replaced: tests, a restore)."""
    with _kept_lock:
        _kept.clear()


def _slugs(model) -> dict[int, str]:
    return dict(model.objects.values_list("id", "slug"))


class Seconds(Func):
    """Seconds from the second datetime to the first, a float, in the database's own
    arithmetic (Django's durations on SQLite call Python once per row and expression)."""

    output_field = FloatField()
    arity = 2
    # PostgreSQL (as every other database the portal runs on).
    template = "EXTRACT(EPOCH FROM (%(expressions)s))::double precision"
    arg_joiner = " - "

    def as_sqlite(self, compiler, connection, **extra):
        # Django keeps datetimes as ISO text there, which julianday() reads.
        return self.as_sql(
            compiler,
            connection,
            template="((julianday(%(expressions)s)) * 86400.0)",
            arg_joiner=") - julianday(",
            **extra,
        )


def _run_groups(runs) -> dict[tuple, list]:
    """`runs` grouped by service, environment, status and action kind: how many, the
    events they stored, the batches and the seconds storing them took; and of those that
    started and ended, how many, their seconds in all, and how many took at most each
    bucket's bound (a run not ended has no duration: NULL, neither counted nor summed)."""
    buckets = {
        f"le_{bound}": Count("id", filter=Q(duration__lte=bound)) for bound in DURATION_BUCKETS
    }
    rows = (
        runs.order_by()
        .annotate(duration=Seconds("finished_at", "started_at"))
        .values_list("service_id", "environment_id", "status", "action_kind")
        .annotate(
            runs=Count("id"),
            events=Sum("event_count"),
            batches=Sum("ingest_batches"),
            batch_seconds=Sum("ingest_seconds"),
            ended=Count("duration"),
            took=Sum("duration"),
            **buckets,
        )
    )
    groups = {}
    for service, environment, status, kind, *figures in rows:
        # PostgreSQL sums integers as numeric (Decimal): plain numbers, to add up.
        groups[(service, environment, status, kind)] = [
            x if isinstance(x, int | float) else float(x or 0) for x in figures
        ]
    return groups


def _groups_add(into: dict[tuple, list], more: dict[tuple, list]) -> dict[tuple, list]:
    for key, figures in more.items():
        into[key] = [a + b for a, b in zip(into.get(key, [0] * len(figures)), figures, strict=True)]
    return into


def run_figures(*, now: datetime) -> dict[tuple, list]:
    """The figures of _run_groups for every run: those settled (ended before `now` -
    SETTLED_AFTER) from the sums kept, brought up to date; the others read now."""
    settled_before = now - SETTLED_AFTER
    with _kept_lock:
        kept = _kept.get("runs")
        if kept is None:
            kept = {"before": settled_before, "groups": {}}
            settled = Run.objects.filter(finished_at__lt=settled_before)
        else:
            settled = Run.objects.filter(
                finished_at__gte=kept["before"], finished_at__lt=settled_before
            )
        if kept["before"] <= settled_before:
            _groups_add(kept["groups"], _run_groups(settled))
            kept["before"] = settled_before
        _kept["runs"] = kept
        groups = {key: list(figures) for key, figures in kept["groups"].items()}
        before = kept["before"]
    # Two queries rather than one with OR, and a range bound on both sides: SQLite's
    # planner reads the whole table for an OR, or for a range open on one side.
    _groups_add(groups, _run_groups(Run.objects.filter(finished_at__isnull=True)))
    recent = Run.objects.filter(finished_at__gte=before, finished_at__lt=now + FUTURE)
    return _groups_add(groups, _run_groups(recent))


def queue_depths() -> dict[tuple[str, str], dict]:
    """Per queue, the runs queued for a worker and those waiting in the deploy queue: how
    many, and since when the oldest (a queued run counts from when it was sent). Every
    environment's queue is there, with zeros when nothing waits on it."""
    rows = (
        Run.objects.order_by()
        .filter(status__in=PENDING)
        .values("queue", "status")
        .annotate(
            runs=Count("id"),
            oldest_created=Min("created_at"),
            oldest_queued=Min(Coalesce("queued_at", "created_at")),
        )
    )
    depths = {
        (queue, status): {"runs": 0, "oldest": None}
        for queue in Environment.objects.order_by().values_list("queue", flat=True).distinct()
        for status in PENDING
    }
    for row in rows:
        oldest = row["oldest_queued" if row["status"] == RunStatus.QUEUED else "oldest_created"]
        depths[(row["queue"], row["status"])] = {"runs": row["runs"], "oldest": oldest}
    return depths


def launches_refused() -> dict[str, int]:
    """Launches refused since the audit log began, by kind (RefusalKind), counted on its
    run.refused rows (the index on verb and id) by the kind their canonical details text
    holds. Audit rows never change: only those after the last one counted are read."""
    kinds = [str(kind) for kind in RefusalKind]
    with _kept_lock:
        kept = _kept.setdefault("refused", {"last_id": 0, "counts": dict.fromkeys(kinds, 0)})
        new = AuditEvent.objects.filter(verb="run.refused", id__gt=kept["last_id"]).aggregate(
            last_id=Max("id"),
            total=Count("id"),
            **{kind: Count("id", filter=Q(details__contains=f'"kind":"{kind}"')) for kind in kinds},
        )
        if new["last_id"] is not None:
            kept["last_id"] = new["last_id"]
            kept["counts"][REFUSAL_OTHER] = (
                kept["counts"].get(REFUSAL_OTHER, 0)
                + new["total"]
                - sum(new[kind] for kind in kinds)
            )
            for kind in kinds:
                kept["counts"][kind] += new[kind]
        return {REFUSAL_OTHER: 0, **kept["counts"]}


class PortalCollector(Collector):
    """Everything /metrics shows, read at each scrape."""

    def collect(self):
        began = time.monotonic()
        now = timezone.now()
        services, environments = _slugs(Service), _slugs(Environment)
        groups = run_figures(now=now)
        families = [
            *self._runs(groups, services, environments),
            *self._durations(groups, environments),
            *self._queues(now),
            *self._refusals(),
            *self._audit(now),
        ]
        scrape = GaugeMetricFamily(
            "pushbutton_metrics_scrape_seconds",
            "How long this scrape took to read the database and add the figures up.",
        )
        scrape.add_metric([], time.monotonic() - began)
        yield from families
        yield scrape

    def _runs(self, groups, services, environments):
        runs = GaugeMetricFamily(
            "pushbutton_runs",
            "Runs per service, environment and status (a run moves from queued to running "
            "to its final status; the final ones only grow).",
            labels=["service", "environment", "status"],
        )
        counts = defaultdict(int)
        events = defaultdict(int)
        batches = defaultdict(int)
        seconds = defaultdict(float)
        for (service_id, environment_id, status, _), figures in groups.items():
            environment = environments.get(environment_id, "")
            count, stored, batch_count, batch_seconds = figures[:4]
            counts[(services.get(service_id, ""), environment, status)] += count
            events[environment] += stored
            batches[environment] += batch_count
            seconds[environment] += batch_seconds
        for labels, count in sorted(counts.items()):
            runs.add_metric(list(labels), count)
        yield runs
        stored = CounterMetricFamily(
            "pushbutton_run_events",
            "Events of runs stored, per environment.",
            labels=["environment"],
        )
        ingest = SummaryMetricFamily(
            "pushbutton_event_ingest_seconds",
            "Batches of run events the workers stored, and the seconds storing them took "
            "(rate of _sum over rate of _count: the mean latency of a batch).",
            labels=["environment"],
        )
        for environment in sorted(batches):
            stored.add_metric([environment], events[environment])
            ingest.add_metric([environment], batches[environment], seconds[environment])
        yield stored
        yield ingest

    def _durations(self, groups, environments):
        family = HistogramMetricFamily(
            "pushbutton_run_duration_seconds",
            "Time from start to end of the runs that ended, per environment and action kind.",
            labels=["environment", "kind"],
        )
        histograms = {}
        for (_, environment_id, _, kind), figures in groups.items():
            ended, took, *buckets = figures[4:]
            if not ended:
                continue
            key = (environments.get(environment_id, ""), kind)
            histogram = histograms.setdefault(key, [0] * (2 + len(buckets)))
            histogram[0] += ended
            histogram[1] += took
            for i, count in enumerate(buckets):
                histogram[2 + i] += count
        for labels, (ended, took, *buckets) in sorted(histograms.items()):
            points = [(str(float(b)), c) for b, c in zip(DURATION_BUCKETS, buckets, strict=True)]
            points.append(("+Inf", ended))
            family.add_metric(list(labels), points, took)
        yield family

    def _queues(self, now):
        depth = GaugeMetricFamily(
            "pushbutton_queue_runs",
            "Runs queued for a worker (status queued) or waiting in the deploy queue "
            "(status waiting), per Celery queue.",
            labels=["queue", "status"],
        )
        age = GaugeMetricFamily(
            "pushbutton_queue_oldest_seconds",
            "How long the oldest of those runs has been there (0 when none is).",
            labels=["queue", "status"],
        )
        depths = queue_depths()
        for (queue, status), figures in sorted(depths.items()):
            depth.add_metric([queue, status], figures["runs"])
            oldest = figures["oldest"]
            seconds = max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
            age.add_metric([queue, status], seconds)
        yield depth
        yield age
        workers = GaugeMetricFamily(
            "pushbutton_queue_live_workers",
            "Live workers consuming each queue (heartbeat rows, apps/workers): every "
            "environment's queue and the housekeeping queue are there, with 0 when no "
            "worker consumes it.",
            labels=["queue"],
        )
        live = live_queues(now=now)
        expected = {queue for queue, _ in depths} | {settings.CELERY_HOUSEKEEPING_QUEUE}
        for queue in sorted(expected | set(live)):
            workers.add_metric([queue], live.get(queue, 0))
        yield workers

    def _refusals(self):
        family = CounterMetricFamily(
            "pushbutton_launches_refused",
            "Launches refused, by kind of reason (the audit log's run.refused rows).",
            labels=["reason"],
        )
        for kind, count in sorted(launches_refused().items()):
            family.add_metric([kind], count)
        yield family

    def _audit(self, now):
        verification = audit_verification_latest()
        if verification is not None:
            ended = verification.started_at + timedelta(seconds=verification.duration)
            yield _gauge(
                "pushbutton_audit_verification_ok",
                "Whether the last verification of the audit chain found it intact (1) or not.",
                1 if verification.ok else 0,
            )
            yield _gauge(
                "pushbutton_audit_verification_timestamp_seconds",
                "When the last verification of the audit chain ended (Unix time).",
                ended.timestamp(),
            )
            yield _gauge(
                "pushbutton_audit_verification_age_seconds",
                "Seconds since the last verification of the audit chain ended.",
                (now - ended).total_seconds(),
            )
        checkpoint = audit_checkpoint_latest()
        if checkpoint is not None:
            yield _gauge(
                "pushbutton_audit_checkpoint_timestamp_seconds",
                "When the last checkpoint of the audit chain was signed (Unix time).",
                checkpoint.signed_at.timestamp(),
            )
            yield _gauge(
                "pushbutton_audit_checkpoint_age_seconds",
                "Seconds since the last checkpoint of the audit chain was signed.",
                (now - checkpoint.signed_at).total_seconds(),
            )
            yield _gauge(
                "pushbutton_audit_checkpoint_publish_errors",
                "Places the last checkpoint could not be published to (file, webhook).",
                len(checkpoint.publish_errors or []),
            )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation)
    family.add_metric([], value)
    return family


# Only the portal's own figures: a web process's own (memory, CPU, its Python) would be
# one process's among several, and the host's exporters tell those better.
REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(PortalCollector())
