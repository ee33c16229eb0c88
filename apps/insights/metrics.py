"""The portal's figures for Prometheus (`/metrics`), read from the database at each scrape.

The portal runs as several processes: web processes, and Celery workers on other hosts.
A counter kept in one process's memory would tell only that process's part, and vanish
with it. So nothing here counts in memory: a collector asks the database when Prometheus
scrapes, with a few grouped queries (docs/monitoring.md says which, and what they cost).
What only a worker sees while it runs (how long storing a batch of events took) is
written onto the run as it happens (Run.ingest_batches, Run.ingest_seconds) and added up
here like the rest.
"""

import time
from collections import defaultdict
from datetime import timedelta

from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, Q, Sum
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


def _slugs(model) -> dict[int, str]:
    return dict(model.objects.values_list("id", "slug"))


def runs_by_status() -> list[dict]:
    """Runs per service, environment and status, with the batches of events they stored
    and the time storing them took: one pass over the runs table, grouped."""
    return list(
        Run.objects.order_by()
        .values("service_id", "environment_id", "status")
        .annotate(
            runs=Count("id"),
            events=Sum("event_count"),
            batches=Sum("ingest_batches"),
            seconds=Sum("ingest_seconds"),
        )
    )


def run_durations() -> list[dict]:
    """Per environment and action kind, the runs that started and ended: how many, their
    time in all, and how many took at most each bucket's bound."""
    duration = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    buckets = {
        f"le_{bound}": Count("id", filter=Q(duration__lte=timedelta(seconds=bound)))
        for bound in DURATION_BUCKETS
    }
    return list(
        Run.objects.order_by()
        .filter(started_at__isnull=False, finished_at__isnull=False)
        .annotate(duration=duration)
        .values("environment_id", "action_kind")
        .annotate(count=Count("id"), total=Sum("duration"), **buckets)
    )


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
    """Launches refused since the audit log began, by kind (RefusalKind): counted on its
    refusal rows (the index on verb), by the kind their canonical details text holds."""
    kinds = [str(kind) for kind in RefusalKind]
    counts = AuditEvent.objects.filter(verb="run.refused").aggregate(
        total=Count("id"),
        **{kind: Count("id", filter=Q(details__contains=f'"kind":"{kind}"')) for kind in kinds},
    )
    total = counts.pop("total")
    counts[REFUSAL_OTHER] = total - sum(counts.values())
    return counts


class PortalCollector(Collector):
    """Everything /metrics shows, read at each scrape."""

    def collect(self):
        began = time.monotonic()
        now = timezone.now()
        services, environments = _slugs(Service), _slugs(Environment)
        yield from self._runs(services, environments)
        yield from self._durations(environments)
        yield from self._queues(now)
        yield from self._refusals()
        yield from self._audit(now)
        scrape = GaugeMetricFamily(
            "pushbutton_metrics_scrape_seconds",
            "How long the database queries of this scrape took.",
        )
        scrape.add_metric([], time.monotonic() - began)
        yield scrape

    def _runs(self, services, environments):
        runs = GaugeMetricFamily(
            "pushbutton_runs",
            "Runs per service, environment and status (a run moves from queued to running "
            "to its final status; the final ones only grow).",
            labels=["service", "environment", "status"],
        )
        events = defaultdict(int)
        batches = defaultdict(int)
        seconds = defaultdict(float)
        for row in runs_by_status():
            environment = environments.get(row["environment_id"], "")
            runs.add_metric(
                [services.get(row["service_id"], ""), environment, row["status"]], row["runs"]
            )
            events[environment] += row["events"] or 0
            batches[environment] += row["batches"] or 0
            seconds[environment] += row["seconds"] or 0.0
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

    def _durations(self, environments):
        family = HistogramMetricFamily(
            "pushbutton_run_duration_seconds",
            "Time from start to end of the runs that ended, per environment and action kind.",
            labels=["environment", "kind"],
        )
        for row in run_durations():
            buckets = [(str(float(bound)), row[f"le_{bound}"]) for bound in DURATION_BUCKETS]
            buckets.append(("+Inf", row["count"]))
            total = row["total"].total_seconds() if row["total"] else 0.0
            family.add_metric(
                [environments.get(row["environment_id"], ""), row["action_kind"]],
                buckets,
                total,
            )
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
            "environment's queue is there, with 0 when no worker consumes it.",
            labels=["queue"],
        )
        live = live_queues(now=now)
        for queue in sorted({queue for queue, _ in depths} | set(live)):
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
