"""What a worker process writes about itself: its heartbeat, and its clean stop.

Rows, not Celery's events: the embedded default broker (Celery's filesystem transport)
carries no broadcast, so no events, no remote control and no `inspect`; and workers
may run `--without-heartbeat --without-gossip` (the tests' does). A row in the
portal's own database works with every broker and every process that can read it."""

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from apps.workers.models import Worker


@dataclass(frozen=True)
class WorkerFacts:
    """What a worker says of itself at each heartbeat."""

    hostname: str
    queues: list[str]
    concurrency: int
    pid: int
    pushbutton_version: str
    ansible_core_version: str
    started_at: datetime


def worker_heartbeat(*, facts: WorkerFacts) -> Worker:
    """Record that the worker `facts.hostname` is alive now, consuming `facts.queues`.

    The whole row is written each time (created if missing, e.g. after it was deleted
    in the admin), so a heartbeat alone makes the worker known."""
    worker, _ = Worker.objects.update_or_create(
        hostname=facts.hostname,
        defaults={
            "queues": sorted(set(facts.queues)),
            "concurrency": facts.concurrency,
            "pid": facts.pid,
            "pushbutton_version": facts.pushbutton_version[:50],
            "ansible_core_version": facts.ansible_core_version[:50],
            "started_at": facts.started_at,
            "last_seen_at": timezone.now(),
            "stopped_at": None,
        },
    )
    return worker


def worker_stopped(*, hostname: str) -> int:
    """Record that the worker `hostname` shut down cleanly: it is not live any more
    (without waiting WORKER_SILENT_AFTER_SECONDS for its silence)."""
    now = timezone.now()
    return Worker.objects.filter(hostname=hostname).update(stopped_at=now, last_seen_at=now)
