import logging
import os

from celery import shared_task
from celery.signals import worker_ready
from django.utils import timezone

from apps.runs import runner, services
from apps.runs.constants import RunStatus
from apps.runs.models import Run

log = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=False, ignore_result=True)
def run_execute(self, run_id: int) -> None:
    """Execute a queued run. A redelivered message finds it started and does nothing."""
    run = services.run_start(run_id=run_id, worker=self.request.hostname or "", pid=os.getpid())
    if run is None:
        log.info("Run %s is not queued any more; nothing to do.", run_id)
        return
    try:
        outcome = runner.execute(
            run,
            secret_values=services.run_secret_values(run=run),
            cancel_requested=lambda: Run.objects.filter(
                pk=run_id, cancel_requested_at__isnull=False
            ).exists(),
            heartbeat=lambda: Run.objects.filter(pk=run_id).update(heartbeat_at=timezone.now()),
        )
    except Exception as exc:
        log.exception("Run %s failed in the worker", run_id)
        services.run_finish(
            run=run, status=RunStatus.FAILED, error=f"Internal error: {type(exc).__name__}"
        )
        raise
    services.run_finish(
        run=run,
        status=outcome.status,
        rc=outcome.rc,
        host_summary=outcome.host_summary,
        error=outcome.error,
        version=outcome.version,
    )


@worker_ready.connect
def _mark_lost_runs(sender, **kwargs):
    # Runs this worker had when it was killed cannot still be going.
    hostname = getattr(sender, "hostname", None)
    if hostname:
        lost = services.runs_mark_lost(worker=hostname)
        if lost:
            log.warning("Marked %s run(s) of %s as lost.", lost, hostname)
