"""Which workers are live and which queues they consume.

A worker is live when its last heartbeat is at most WORKER_SILENT_AFTER_SECONDS old and
it did not stop; otherwise it is *silent* (it died, or cannot reach the database) or
*stopped* (it shut down cleanly)."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils import timezone

from apps.workers.models import Worker

LIVE, SILENT, STOPPED = "live", "silent", "stopped"


def _silent_after() -> timedelta:
    return timedelta(seconds=settings.WORKER_SILENT_AFTER_SECONDS)


def live_workers(*, now: datetime | None = None):
    """The live workers, as a query."""
    now = now or timezone.now()
    return Worker.objects.filter(stopped_at__isnull=True, last_seen_at__gte=now - _silent_after())


def live_queues(*, now: datetime | None = None) -> dict[str, int]:
    """Each queue a live worker consumes -> how many live workers consume it."""
    counts: dict[str, int] = {}
    for queues in live_workers(now=now).values_list("queues", flat=True):
        for queue in queues or []:
            counts[queue] = counts.get(queue, 0) + 1
    return counts


@dataclass(frozen=True)
class WorkerState:
    """A worker as the workers page shows it."""

    worker: Worker
    state: str  # LIVE, SILENT or STOPPED
    silent_since: datetime | None  # its last heartbeat, when it went silent

    @property
    def live(self) -> bool:
        return self.state == LIVE


def worker_state(worker: Worker, *, now: datetime | None = None) -> WorkerState:
    now = now or timezone.now()
    if worker.stopped_at is not None:
        return WorkerState(worker, STOPPED, None)
    if worker.last_seen_at < now - _silent_after():
        return WorkerState(worker, SILENT, worker.last_seen_at)
    return WorkerState(worker, LIVE, None)


def worker_list(*, now: datetime | None = None) -> list[WorkerState]:
    """Every worker known, live ones first, then by host name."""
    now = now or timezone.now()
    states = [worker_state(w, now=now) for w in Worker.objects.all()]
    order = {LIVE: 0, SILENT: 1, STOPPED: 2}
    return sorted(states, key=lambda s: (order[s.state], s.worker.hostname))


def queue_unattended_since(queue: str, *, now: datetime | None = None) -> datetime | None:
    """Since when no live worker consumes `queue`: None while one does; the moment its
    last worker stopped or went silent (its last heartbeat + WORKER_SILENT_AFTER_SECONDS);
    datetime.min (aware) when no worker ever announced it."""
    now = now or timezone.now()
    gone = []
    for worker in Worker.objects.all():
        if queue not in (worker.queues or []):
            continue
        state = worker_state(worker, now=now)
        if state.live:
            return None
        gone.append(worker.stopped_at or worker.last_seen_at + _silent_after())
    return max(gone, default=datetime.min.replace(tzinfo=UTC))


def no_worker_reason(*, queue: str, environment: str) -> str | None:
    """That no live worker consumes `queue`, where the runs of `environment` go, in a
    sentence; None when one does."""
    if live_queues().get(queue):
        return None
    return f"No live worker consumes queue {queue!r}, where the runs of {environment} go."
