"""A run's life after its launch: queued, running, ended.

One door in, one door out: `run_start` is the only way a run starts running and
`run_end` the only way it reaches a final status. Each writes the status and its audit
row in one transaction and, once that committed, sends `run_started` / `run_ended`
(apps/runs/signals.py), which is where everything that follows a run hangs."""

import logging
import uuid
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.accounts.permissions import cancel_refusal_reason
from apps.audit.constants import Outcome, Via
from apps.audit.services import audit_record
from apps.environments.selectors import launch_block
from apps.runs.constants import FINAL_STATUSES, TASK_EXECUTE, VERSION_MAX_CHARS, RunStatus
from apps.runs.models import Run
from apps.runs.queue import QUEUE_DOWN, QUEUE_ERRORS, task_send
from apps.runs.services.checks import LaunchRefused
from apps.runs.signals import emit, run_ended, run_started
from portal.crypto import decrypt_json

log = logging.getLogger(__name__)


def run_queued_max_seconds() -> int:
    """How long a run may wait for a worker (RUN_QUEUED_MAX_SECONDS, an hour by default)."""
    return settings.RUN_QUEUED_MAX_SECONDS


def run_enqueue(*, run: Run) -> bool:
    """Send the run to its queue. When the broker refuses, the run ends at once as
    failed (it never started) rather than stay queued for ever; returns False."""
    try:
        task_send(
            TASK_EXECUTE,
            args=[run.pk],
            queue=run.queue,
            soft_time_limit=run.timeout + settings.RUN_SOFT_TIME_LIMIT_MARGIN,
            time_limit=run.timeout + settings.RUN_HARD_TIME_LIMIT_MARGIN,
            # A message that waited longer finds its run already ended by the reaper.
            expires=run_queued_max_seconds(),
        )
    except QUEUE_ERRORS as exc:
        log.error("Run %s could not be queued: %s", run.pk, exc)
        run_end(run=run, status=RunStatus.FAILED, error=f"Never started: {QUEUE_DOWN}")
        return False
    return True


def run_start(*, run_id: int, worker: str, pid: int) -> Run | None:
    """Move a queued run to running: the one door in. Returns None when it was not
    queued any more (canceled meanwhile, or a redelivered task whose run already started).

    The run gets its marker here, before any of its processes exists, so a reaper
    can always find them.

    A lock or a freeze that began while it waited is checked again here: the run
    then ends failed without starting (an emergency run passes a freeze)."""
    # Read once, with what the worker needs of it (a message for a run that is gone or
    # not queued any more costs this one lookup); the start is written onto it below.
    queued = (
        Run.objects.select_related("service", "environment", "playbook_version__source")
        .filter(pk=run_id, status=RunStatus.QUEUED)
        .first()
    )
    if queued is None:
        return None
    if (
        (block := launch_block(service=queued.service, environment=queued.environment))
        # An emergency run passes a freeze, and so does a dry run; nothing passes a lock.
        and not (block.overridable and (queued.emergency or queued.check_mode))
    ):
        run_end(run=queued, status=RunStatus.FAILED, error=f"Not started: {block.reason}")
        return None
    now = timezone.now()
    start = {
        "status": RunStatus.RUNNING,
        "started_at": now,
        "heartbeat_at": now,
        "worker": worker,
        "worker_pid": pid,
        "marker": f"{run_id}-{uuid.uuid4().hex}",
    }
    with transaction.atomic():
        if not Run.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(**start):
            return None
        run = queued
        for name, value in start.items():
            setattr(run, name, value)
        audit_record(
            actor=None,
            via=Via.SYSTEM,
            verb="run.started",
            obj=run,
            service=run.service.slug,
            environment=run.environment.slug,
            details={"worker": worker},
        )
        transaction.on_commit(lambda: emit(run_started, run=run))
    return run


def run_heartbeat(*, run_id: int) -> bool:
    """Tell reapers the run is alive; only a running run's heartbeat is refreshed."""
    return bool(
        Run.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(heartbeat_at=timezone.now())
    )


def run_should_stop(*, run_id: int) -> bool:
    """Whether the runner must stop: a cancel was asked, or the run is not running any
    more (a reaper ended it as lost; its lock may already be someone else's)."""
    return not Run.objects.filter(
        pk=run_id, status=RunStatus.RUNNING, cancel_requested_at__isnull=True
    ).exists()


def run_secret_values(*, run: Run) -> dict:
    return decrypt_json(run.secret_parameters) if run.secret_parameters else {}


def run_credentials(*, run: Run) -> list[dict]:
    """The credentials copied onto the run at launch, decrypted (kind, variable, secret,
    passphrase): edits or deletions of the credentials since do not change a run."""
    return decrypt_json(run.secret_credentials) if run.secret_credentials else []


@dataclass(frozen=True)
class EndNote:
    """Who ended (or tried to end) a run and how, for its audit row: by default the
    system, recording how the run finished."""

    verb: str = "run.finished"
    actor: object = None
    via: str = Via.SYSTEM
    request: object = None
    details: dict = field(default_factory=dict)


def run_end(
    *,
    run: Run,
    status: str,
    rc: int | None = None,
    host_summary=None,
    error: str = "",
    version: str = "",
    note: EndNote | None = None,
) -> Run:
    """The one door out: record that `run` reached the final `status`, erase its secrets
    and write the audit row, in one transaction; once committed, send `run_ended`.

    A run that has already ended (marked lost by a reaper, or a retried call) is left
    as it is, and nothing is sent again."""
    if status not in FINAL_STATUSES:
        raise ValueError(f"{status!r} is not a final status.")
    with transaction.atomic():
        current = Run.objects.select_for_update().filter(pk=run.pk).values("status").first()
        if current is None or current["status"] in FINAL_STATUSES:
            run.refresh_from_db()
            return run
        run.status = status
        run.rc = rc
        run.host_summary = host_summary or {}
        run.error = error
        if version:
            run.version = version[:VERSION_MAX_CHARS]
        run.finished_at = timezone.now()
        run.secret_parameters = ""
        run.secret_credentials = ""
        run.save(
            update_fields=[
                "status",
                "rc",
                "host_summary",
                "error",
                "version",
                "finished_at",
                "secret_parameters",
                "secret_credentials",
            ]
        )
        _end_audit(run, note or EndNote())
        transaction.on_commit(lambda: emit(run_ended, run=run))
    return run


def _end_audit(run: Run, note: EndNote) -> None:
    if note.verb == "run.finished":
        outcome = Outcome.SUCCESS if run.status == RunStatus.SUCCESSFUL else Outcome.FAILURE
        details = {
            "status": run.status,
            "rc": run.rc,
            "host_summary": run.host_summary,
            "error": run.error,
        }
        _audit(run, note, outcome=outcome, details=details)
    else:
        _audit(run, note)


def _audit(run: Run, note: EndNote, *, outcome: str = Outcome.SUCCESS, details=None) -> None:
    audit_record(
        actor=note.actor,
        via=note.via,
        verb=note.verb,
        obj=run,
        service=run.service.slug,
        environment=run.environment.slug,
        outcome=outcome,
        details={**(details or {}), **note.details},
        request=note.request,
    )


def run_cancel(*, run: Run, user, via: str, request=None) -> Run:
    """Ask a run to stop. A waiting or queued run is canceled at once (it ends here); a running one
    is stopped by its worker (whole process tree) within a second or two, and ends there."""
    if reason := cancel_refusal_reason(user, run):
        refused = EndNote(
            verb="run.cancel_refused", actor=user, via=via, request=request, details={}
        )
        _audit(run, refused, outcome=Outcome.REFUSED, details={"reason": reason})
        raise LaunchRefused(reason, status=403)
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        if run.is_final:
            raise LaunchRefused(
                f"Run #{run.pk} has already ended ({run.get_status_display()}).", status=409
            )
        run.cancel_requested_at = timezone.now()
        run.canceled_by_name = user.get_username()
        run.save(update_fields=["cancel_requested_at", "canceled_by_name"])
        queued = run.status in (RunStatus.WAITING, RunStatus.QUEUED)
        note = EndNote(
            verb="run.canceled",
            actor=user,
            via=via,
            request=request,
            details={"status_when_canceled": RunStatus.CANCELED if queued else run.status},
        )
        if queued:
            return run_end(run=run, status=RunStatus.CANCELED, note=note)
        _audit(run, note)
    return run
