"""The workers and the queues, as Ops see them: each worker (from its heartbeat rows,
apps/workers) with the runs it has now; each environment with its queue, whether a
live worker consumes it, and how many runs wait there. Here, above runs, because it
reads both."""

from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from apps.environments.models import Environment
from apps.runs.constants import RunStatus
from apps.runs.models import Run
from apps.workers.selectors import WorkerState, live_queues, worker_list

WAITING_STATUSES = (RunStatus.QUEUED, RunStatus.WAITING)


@dataclass(frozen=True)
class WorkerRow:
    state: WorkerState
    runs: list[Run]  # running on it now


@dataclass(frozen=True)
class QueueRow:
    environment: Environment
    queue: str
    live_workers: int
    waiting: int  # queued for a worker, or waiting in the deploy queue

    @property
    def live(self) -> bool:
        return self.live_workers > 0


@dataclass(frozen=True)
class Housekeeping:
    """The queue of what is not a playbook run (the reaper, schedules, follow-ups,
    notifications, syncs): without a live worker on it, none of that happens."""

    queue: str
    live_workers: int

    @property
    def live(self) -> bool:
        return self.live_workers > 0


def workers_overview() -> tuple[list[WorkerRow], list[QueueRow], Housekeeping]:
    """Every worker known (live first) with its running runs, every environment with its
    queue's state, and the housekeeping queue's."""
    now = timezone.now()
    running: dict[str, list[Run]] = {}
    for run in (
        Run.objects.filter(status=RunStatus.RUNNING)
        .exclude(worker="")
        .select_related("service", "environment")
        .order_by("id")
    ):
        running.setdefault(run.worker, []).append(run)
    workers = [
        WorkerRow(state=state, runs=running.get(state.worker.hostname, []))
        for state in worker_list(now=now)
    ]
    queues = live_queues(now=now)
    waiting = dict(
        Run.objects.filter(status__in=WAITING_STATUSES)
        .values_list("environment_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    rows = [
        QueueRow(
            environment=env,
            queue=env.queue,
            live_workers=queues.get(env.queue, 0),
            waiting=waiting.get(env.pk, 0),
        )
        for env in Environment.objects.all()
    ]
    housekeeping = settings.CELERY_HOUSEKEEPING_QUEUE
    return workers, rows, Housekeeping(housekeeping, queues.get(housekeeping, 0))
