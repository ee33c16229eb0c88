"""Runs whose worker is gone, and runs no worker took: found and ended, so no run stays
queued or running for ever and their deploy lock is freed."""

import socket
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.runs.constants import RunStatus
from apps.runs.models import Run
from apps.runs.services.lifecycle import run_end
from apps.workers.selectors import queue_unattended_since


def runs_mark_lost(
    *, worker: str | None = None, silent_for: float | None = None, host: str | None = None
) -> list[Run]:
    """End as lost the running runs of `worker` (at its restart: it cannot still have
    them), or those whose heartbeat has been silent for `silent_for` seconds (their
    worker died). Returns them, so the caller can clean up what is left on its host,
    `host` (the caller's): a run that went on elsewhere says that its processes there
    could not be stopped from here. Their lock is freed with them."""
    if worker is None and silent_for is None:
        raise ValueError("Say whose runs are lost: a worker, or a silence.")
    runs = Run.objects.filter(status=RunStatus.RUNNING)
    if worker is not None:
        runs = runs.filter(worker=worker)
        why = f"The worker {worker} stopped while the run was going."
    if silent_for is not None:
        cutoff = timezone.now() - timedelta(seconds=silent_for)
        silent = Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
        runs = runs.filter(silent)
        why = f"Its worker stopped answering (no heartbeat for {int(silent_for)} s or more)."
    lost = []
    for run in runs.select_related("service", "environment"):
        with transaction.atomic():
            # Checked again under the row lock: a heartbeat may have just arrived.
            still = Run.objects.select_for_update().filter(pk=run.pk, status=RunStatus.RUNNING)
            if silent_for is not None:
                still = still.filter(silent)
            if not still.exists():
                continue
            error = f"Lost: {why}"
            if host is not None and not run_on_host(run, host):
                error += " " + _left_elsewhere(run, host)
            lost.append(run_end(run=run, status=RunStatus.LOST, error=error))
    return lost


def runs_fail_unstarted(*, waited_for: float) -> list[Run]:
    """End as failed the runs queued for `waited_for` seconds or more: no worker took
    them (none consumes their queue, the message was lost, or the web process died
    before sending it). Their lock is freed with them."""
    cutoff = timezone.now() - timedelta(seconds=waited_for)
    failed = []
    # Since it was sent to a worker: a run that waited in the deploy queue first counts
    # from the end of its wait.
    unstarted = Q(queued_at__lt=cutoff) | Q(queued_at__isnull=True, created_at__lt=cutoff)
    for run in Run.objects.filter(unstarted, status=RunStatus.QUEUED):
        error = (
            f"Never started: no worker took it within {int(waited_for)} s; "
            f"is a worker consuming queue {run.queue!r}?"
        )
        if ended := _fail_if_still_queued(run, error):
            failed.append(ended)
    return failed


def _fail_if_still_queued(run: Run, error: str) -> Run | None:
    """End the queued run as failed with `error`, unless a worker started it meanwhile
    (checked again under the row lock)."""
    with transaction.atomic():
        if not Run.objects.select_for_update().filter(pk=run.pk, status=RunStatus.QUEUED).exists():
            return None
        return run_end(run=run, status=RunStatus.FAILED, error=error)


def worker_host(worker: str) -> str:
    """The host of a Celery worker's node name (name@host; `%h` by default, the
    machine's name), or "" for none."""
    return worker.rpartition("@")[2]


def run_on_host(run: Run, host: str) -> bool:
    """Whether the run's worker was on `host` (a worker's node name's host part)."""
    return worker_host(run.worker) == host


def runs_fail_no_worker(*, grace: float) -> list[Run]:
    """End as failed the queued runs whose queue has had no live worker for `grace`
    seconds (RUN_NO_WORKER_GRACE_SECONDS): the last worker consuming it stopped or went
    silent, so they would wait for nobody; not an hour (RUN_QUEUED_MAX_SECONDS) but a
    short grace, in which a restarting worker comes back. Counted from the later of the
    run's queueing and the queue's losing its last live worker. Their lock is freed."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=grace)
    unattended: dict[str, object] = {}
    failed = []
    queued = Run.objects.filter(status=RunStatus.QUEUED).select_related("service", "environment")
    for run in queued.order_by("id"):
        if run.queue not in unattended:
            unattended[run.queue] = queue_unattended_since(run.queue, now=now)
        since = unattended[run.queue]
        if since is None or max(since, run.queued_at or run.created_at) > cutoff:
            continue
        error = (
            f"Never started: no live worker consumes queue {run.queue!r}, where the runs "
            f"of {run.environment} go (none for {int(grace)} s or more)."
        )
        if ended := _fail_if_still_queued(run, error):
            failed.append(ended)
    return failed


def run_on_this_host(run: Run) -> bool:
    """Whether the run's worker was on this machine (worker names are name@host)."""
    return run_on_host(run, socket.gethostname())


def _left_elsewhere(run: Run, host: str) -> str:
    """What a reaper on `host` says of a lost run that went on on another host: its
    processes may still be going there, and only that host can stop them."""
    where = worker_host(run.worker) or "an unknown host"
    who = f" ({run.worker})" if run.worker else ""
    return (
        f"Its processes on {where} could not be stopped from {host}, where this was seen: "
        f"they are stopped when its worker{who} starts again there."
    )
