import contextlib
import logging
import os
import socket
import time
import traceback
from datetime import timedelta

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_ready
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.utils import timezone

from apps.runs import runner, services
from apps.runs.constants import TASK_EXECUTE, TASK_FOLLOW_UPS, RunStatus
from apps.runs.events import SecretMasker
from apps.runs.models import Run
from apps.runs.private_dir import private_dirs_remove
from portal.crypto import DecryptionError

log = logging.getLogger(__name__)

DB_ERRORS = (OperationalError, InterfaceError)
# Pauses between tries of a write that must happen (a run's end) while the database
# connection is dropping.
DB_RETRY_DELAYS = (0.2, 0.5, 1, 2, 4, 8)


def _reconnect() -> None:
    with contextlib.suppress(Exception):
        connection.close()


def _with_db_retry(call, *, what: str):
    for delay in (*DB_RETRY_DELAYS, None):
        try:
            return call()
        except DB_ERRORS as exc:
            if delay is None:
                raise
            log.warning("%s failed (%s); trying again in %s s.", what, exc, delay)
            _reconnect()
            time.sleep(delay)
    return None  # not reached


def _quietly(call, default):
    """For calls made from the runner's loop: a dropped connection must not end the run."""
    try:
        return call()
    except DB_ERRORS as exc:
        log.warning("Database call from the runner loop failed: %s", exc)
        _reconnect()
        return default


@shared_task(
    name=TASK_EXECUTE, bind=True, acks_late=True, reject_on_worker_lost=False, ignore_result=True
)
def run_execute(self, run_id: int) -> None:
    """Execute a queued run. A redelivered message finds it started and does nothing."""
    run = _with_db_retry(
        lambda: services.run_start(
            run_id=run_id, worker=self.request.hostname or "", pid=os.getpid()
        ),
        what=f"Starting run {run_id}",
    )
    if run is None:
        log.info("Run %s is not queued any more; nothing to do.", run_id)
        return
    masker = SecretMasker([])
    try:
        try:
            secret_values = services.run_secret_values(run=run)
            credentials = services.run_credentials(run=run)
        except DecryptionError as exc:
            _finish(run, status=RunStatus.FAILED, error=f"Its secrets cannot be read: {exc}")
            return
        masker = SecretMasker(runner.run_secrets(secret_values, credentials))
        runner.execute(
            run,
            secret_values=secret_values,
            credentials=credentials,
            cancel_requested=lambda: _quietly(
                lambda: services.run_should_stop(run_id=run_id), False
            ),
            heartbeat=lambda: _quietly(lambda: services.run_heartbeat(run_id=run_id), False),
            masker=masker,
            # The final status as soon as it is known: the private dir is removed after.
            ended=lambda outcome: _finish(
                run,
                status=outcome.status,
                rc=outcome.rc,
                host_summary=outcome.host_summary,
                error=masker.text(outcome.error),
                version=outcome.version,
            ),
        )
    except SoftTimeLimitExceeded:
        # Celery's limit is above the run's own timeout: the runner did not stop it.
        runner.run_processes_kill(run.marker)
        _finish(run, status=RunStatus.TIMED_OUT, error="Stopped by the worker's time limit.")
    except Exception as exc:
        # Logged masked, and not raised again: Celery would log it as it is.
        log.error(
            "Run %s failed in the worker:\n%s",
            run_id,
            masker.text("".join(traceback.format_exception(exc))),
        )
        _finish(
            run,
            status=RunStatus.FAILED,
            error=f"Internal error: {type(exc).__name__}: {masker.text(str(exc))}"[:2000],
        )


@shared_task(name=TASK_FOLLOW_UPS, acks_late=True, ignore_result=True)
def run_follow_ups(run_id: int) -> None:
    """Launch what a successful run starts by itself (verification, promotion); once."""
    run = Run.objects.filter(pk=run_id).first()
    if run is not None:
        services.run_follow_up(run=run)


def _finish(run: Run, **outcome) -> None:
    _with_db_retry(lambda: services.run_end(run=run, **outcome), what=f"Ending run {run.pk}")


def runs_clean_up(runs: list[Run], *, host: str) -> None:
    """What lost runs left on this host, `host`: their processes and private dirs (a
    run of another host's is left to that host's worker, at its restart)."""
    for run in runs:
        if not services.run_on_host(run, host):
            continue
        if run.marker:
            killed = runner.run_processes_kill(run.marker)
            if killed:
                log.warning("Killed %s leftover process(es) of run %s.", killed, run.pk)
        private_dirs_remove(run.pk)


def _host(hostname: str | None) -> str:
    """This worker's host: its node name's (name@host; the machine's name by default,
    another when several workers stand for several hosts), else the machine's name."""
    return services.worker_host(hostname or "") or socket.gethostname()


@shared_task(bind=True, ignore_result=True)
def runs_reap(self) -> int:
    """Periodic (beat): runs whose heartbeat went silent end as lost, which frees their
    lock; what they left on this host is killed and removed (a run of another host
    says it could not be stopped from here). Runs no worker took in time, or queued
    where no live worker has been for RUN_NO_WORKER_GRACE_SECONDS, end as failed, which
    frees theirs. Deploy queues whose lock is free move on."""
    host = _host(self.request.hostname)
    unstarted = services.runs_fail_unstarted(waited_for=services.run_queued_max_seconds())
    if unstarted:
        log.warning(
            "Ended run(s) %s: no worker took them.", ", ".join(f"#{run.pk}" for run in unstarted)
        )
    no_worker = services.runs_fail_no_worker(grace=settings.RUN_NO_WORKER_GRACE_SECONDS)
    if no_worker:
        log.warning(
            "Ended run(s) %s: no live worker consumes their queue.",
            ", ".join(f"#{run.pk}" for run in no_worker),
        )
    for run in services.runs_follow_ups_missed(waited_for=max(60, settings.RUN_REAP_SECONDS)):
        log.warning("Launching the follow-ups of run %s, which were never launched.", run.pk)
        services.run_follow_up(run=run)
    lost = services.runs_mark_lost(silent_for=settings.RUN_LOST_AFTER_SECONDS, host=host)
    if lost:
        log.warning("Marked run(s) %s as lost.", ", ".join(f"#{run.pk}" for run in lost))
    runs_clean_up(lost, host=host)
    # Deploy queues whose lock freed without a word (a process died before it could say).
    for run in services.queues_advance():
        log.info("Run %s left the deploy queue: its turn came.", run.pk)
    return len(lost)


@worker_ready.connect
def _mark_lost_runs(sender, **kwargs):
    # Runs this worker had when it was killed cannot still be going.
    hostname = getattr(sender, "hostname", None)
    if hostname:
        lost = services.runs_mark_lost(worker=hostname)
        if lost:
            log.warning("Marked %s run(s) of %s as lost.", len(lost), hostname)
        # Runs a reaper elsewhere marked lost meanwhile may have left processes here too.
        lost += Run.objects.filter(
            worker=hostname,
            status=RunStatus.LOST,
            finished_at__gte=timezone.now() - timedelta(days=1),
        ).exclude(pk__in=[run.pk for run in lost])
        runs_clean_up(lost, host=_host(hostname))
