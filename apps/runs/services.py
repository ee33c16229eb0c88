"""Launching, starting, finishing and canceling runs."""

import logging
import socket
import uuid
from datetime import timedelta
from typing import NoReturn

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from kombu.exceptions import OperationalError as QueueError

from apps.accounts.permissions import (
    cancel_refusal_reason,
    reauthentication_reason,
    refusal_reason,
)
from apps.audit.models import Outcome as AuditOutcome
from apps.audit.services import audit_record
from apps.catalog.models import Action, Service
from apps.catalog.parameters import (
    ParameterError,
    parameters_clean,
    parameters_masked,
    secret_names,
)
from apps.environments.models import Environment
from apps.environments.selectors import CredentialConflict, credentials_for_run
from apps.environments.services import credential_values
from apps.runs.constants import ACTIVE_STATUSES, FINAL_STATUSES, RunStatus
from apps.runs.models import Run
from portal.crypto import (
    DecryptionError,
    decrypt_json,
    encrypt_json,
    token_is_current,
    token_rotate,
)

log = logging.getLogger(__name__)


class LaunchRefused(Exception):
    """A launch the portal will not do; `status` is the HTTP status that says why."""

    def __init__(
        self,
        reason: str,
        *,
        status: int = 403,
        field: str | None = None,
        holder: "Run | None" = None,
    ):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.field = field
        self.holder = holder  # the run holding the deploy lock, for a 409


QUEUE_DOWN = (
    "The task queue (the Celery broker) cannot be reached, so nothing was launched. "
    "Try again in a minute; if it lasts, tell Ops."
)
QUEUE_ERRORS = (QueueError, OSError)
RUN_VERSION_MAX_CHARS = Run._meta.get_field("version").max_length


def _lock_holder(*, service: Service, environment: Environment) -> Run | None:
    return (
        Run.objects.filter(
            service=service, environment=environment, status__in=ACTIVE_STATUSES, check_mode=False
        )
        .order_by("id")
        .first()
    )


def _locked(holder: Run) -> LaunchRefused:
    return LaunchRefused(
        f"{holder.service} is busy on {holder.environment}: run #{holder.pk} "
        f"({holder.action_label}, {holder.get_status_display().lower()}, requested by "
        f"{holder.requested_by_name}) holds the deploy lock. Wait for it to end, or cancel it.",
        status=409,
        holder=holder,
    )


def queue_unreachable_reason() -> str | None:
    """Why a run could not be queued now (the broker is down), or None."""
    from portal.celery import app

    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=0, timeout=settings.QUEUE_CHECK_TIMEOUT)
    except QUEUE_ERRORS as exc:
        log.warning("The Celery broker cannot be reached: %s", exc)
        return QUEUE_DOWN
    return None


def _refuse(
    exc: LaunchRefused | ParameterError,
    *,
    user,
    service,
    action,
    environment,
    via,
    request,
) -> NoReturn:
    """Record the refusal in the audit log (even though nothing else is written), then raise."""
    if isinstance(exc, ParameterError):
        details = {"reason": "Parameters do not fit the form.", "errors": exc.errors}
    else:
        details = {"reason": exc.reason}
        if exc.holder is not None:
            details["lock_held_by"] = exc.holder.pk
    audit_record(
        actor=user,
        via=via,
        verb="run.refused",
        object_type="catalog.action",
        object_id=str(action.pk) if action else "",
        object_repr=str(action) if action else "",
        service=service.slug if service else "",
        environment=environment.slug if environment else "",
        details=details,
        outcome=AuditOutcome.REFUSED,
        request=request,
    )
    raise exc


def run_launch(
    *,
    user,
    service: Service,
    action: Action,
    environment: Environment,
    parameters,
    check: bool = False,
    from_api: bool,
    via: str,
    request=None,
    rerun_of: Run | None = None,
) -> Run:
    """Check everything, then create a queued Run and its audit row in one transaction;
    the worker task is enqueued on the environment's queue after commit.

    One queued or running run per service and environment holds the deploy lock
    (a partial unique index, so it holds under concurrent launches); a second one
    is refused with 409 naming the holder. Dry runs never take it. When the broker
    cannot be reached nothing is created (503); should it drop between that check
    and the enqueue, the run ends at once as failed, never left queued.

    Raises LaunchRefused (recorded in the audit log) or ParameterError.
    """
    refusal = dict(
        user=user, service=service, action=action, environment=environment, via=via, request=request
    )
    if action.service_id != service.pk:
        _refuse(
            LaunchRefused(f"{service} has no action {action.slug!r}.", status=400, field="action"),
            **refusal,
        )
    if reason := refusal_reason(user, action=action, environment=environment):
        _refuse(LaunchRefused(reason, status=403), **refusal)
    if reason := reauthentication_reason(user, environment=environment, request=request):
        _refuse(LaunchRefused(reason, status=403), **refusal)
    version = action.playbook_version
    if not version.is_approved:
        _refuse(
            LaunchRefused(f"The playbook version of {action.label} is not approved.", status=409),
            **refusal,
        )
    try:
        clean = parameters_clean(action.form, parameters, from_api=from_api)
    except ParameterError as exc:
        # Raised as is, so pages and the API can show each field's errors.
        _refuse(exc, **refusal)
    secrets = {k: clean[k] for k in secret_names(action.form) if clean.get(k) not in (None, "")}
    masked = parameters_masked(action.form, clean)
    run_version = str(clean.get(action.version_field) or "") if action.version_field else ""
    if len(run_version) > RUN_VERSION_MAX_CHARS:
        _refuse(
            ParameterError(
                {action.version_field: [f"At most {RUN_VERSION_MAX_CHARS} characters."]}
            ),
            **refusal,
        )
    if action.timeout > settings.RUN_TIMEOUT_MAX:
        _refuse(
            LaunchRefused(
                f"The timeout of {action.label} ({action.timeout} s) is above the longest a run "
                f"may take here ({settings.RUN_TIMEOUT_MAX} s): Ops must lower it.",
                status=409,
            ),
            **refusal,
        )
    try:
        credentials = [
            credential_values(c)
            for c in credentials_for_run(action=action, environment=environment)
        ]
    except (CredentialConflict, DecryptionError) as exc:
        _refuse(LaunchRefused(f"Credentials: {exc}", status=409), **refusal)
    if clash := {c["variable"] for c in credentials} & {f["name"] for f in action.form}:
        _refuse(
            LaunchRefused(
                f"A credential of {environment} and a field of the form both set "
                f"{', '.join(sorted(clash))}: Ops must rename one.",
                status=409,
            ),
            **refusal,
        )
    if not check and (holder := _lock_holder(service=service, environment=environment)):
        _refuse(_locked(holder), **refusal)
    if reason := queue_unreachable_reason():
        _refuse(LaunchRefused(reason, status=503), **refusal)

    enqueued: list[bool] = []
    try:
        with transaction.atomic():
            run = Run.objects.create(
                service=service,
                action=action,
                environment=environment,
                action_slug=action.slug,
                action_label=action.label,
                action_kind=action.kind,
                playbook_version=version,
                playbook_commit=version.commit,
                playbook_path=version.path,
                content_hash=version.content_hash,
                form=action.form,
                inventory=environment.inventory,
                timeout=action.timeout,
                queue=environment.queue,
                parameters=masked,
                secret_parameters=encrypt_json(secrets) if secrets else "",
                version=run_version,
                check_mode=check,
                rerun_of=rerun_of,
                requested_by=user,
                requested_by_name=user.get_username(),
                credentials=[
                    {"name": c["name"], "kind": c["kind"], "variable": c["variable"]}
                    for c in credentials
                ],
                secret_credentials=encrypt_json(credentials) if credentials else "",
            )
            audit_record(
                actor=user,
                via=via,
                verb="run.requested",
                obj=run,
                service=service.slug,
                environment=environment.slug,
                request=request,
                details={
                    "action": action.slug,
                    "parameters": masked,
                    "check": check,
                    "playbook_commit": version.commit,
                    "playbook_path": version.path,
                    "content_hash": version.content_hash,
                    "credentials": [c["name"] for c in credentials],
                },
            )
            transaction.on_commit(lambda: enqueued.append(run_enqueue(run=run)))
    except IntegrityError:
        # Another launch took the lock between the check above and this insert.
        holder = None if check else _lock_holder(service=service, environment=environment)
        if holder is None:
            raise
        _refuse(_locked(holder), **refusal)
    if enqueued == [False]:
        raise LaunchRefused(QUEUE_DOWN, status=503)
    return run


def run_enqueue(*, run: Run) -> bool:
    """Send the run to its queue. When the broker refuses, the run ends at once as
    failed (it never started) rather than stay queued for ever; returns False."""
    from apps.runs.tasks import run_execute

    try:
        run_execute.apply_async(
            args=[run.pk],
            queue=run.queue,
            soft_time_limit=run.timeout + settings.RUN_SOFT_TIME_LIMIT_MARGIN,
            time_limit=run.timeout + settings.RUN_HARD_TIME_LIMIT_MARGIN,
            # A message that waited longer finds its run already ended by the reaper.
            expires=run_queued_max_seconds(),
        )
    except QUEUE_ERRORS as exc:
        log.error("Run %s could not be queued: %s", run.pk, exc)
        run_finish(run=run, status=RunStatus.FAILED, error=f"Never started: {QUEUE_DOWN}")
        return False
    return True


def run_start(*, run_id: int, worker: str, pid: int) -> Run | None:
    """Move a queued run to running. Returns None when it was not queued any more
    (canceled meanwhile, or a redelivered task whose run already started).

    The run gets its marker here, before any of its processes exists, so a reaper
    can always find them."""
    now = timezone.now()
    with transaction.atomic():
        started = Run.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
            status=RunStatus.RUNNING,
            started_at=now,
            heartbeat_at=now,
            worker=worker,
            worker_pid=pid,
            marker=f"{run_id}-{uuid.uuid4().hex}",
        )
        if not started:
            return None
        run = Run.objects.select_related("service", "environment", "playbook_version__source").get(
            pk=run_id
        )
        audit_record(
            actor=None,
            via="system",
            verb="run.started",
            obj=run,
            service=run.service.slug,
            environment=run.environment.slug,
            details={"worker": worker},
        )
    return run


def run_secret_values(*, run: Run) -> dict:
    return decrypt_json(run.secret_parameters) if run.secret_parameters else {}


def run_credentials(*, run: Run) -> list[dict]:
    """The credentials copied onto the run at launch, decrypted (kind, variable, secret,
    passphrase): edits or deletions of the credentials since do not change a run."""
    return decrypt_json(run.secret_credentials) if run.secret_credentials else []


def run_finish(
    *,
    run: Run,
    status: str,
    rc: int | None = None,
    host_summary=None,
    error: str = "",
    version: str = "",
) -> Run:
    """Record how a run ended, erase its secrets and write the audit row.

    A run that has already ended (marked lost by a reaper, or a retried call) is
    left as it is."""
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
            # A version the playbook reported is cut to what the column holds.
            run.version = version[:RUN_VERSION_MAX_CHARS]
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
        audit_record(
            actor=None,
            via="system",
            verb="run.finished",
            obj=run,
            service=run.service.slug,
            environment=run.environment.slug,
            outcome=AuditOutcome.SUCCESS
            if status == RunStatus.SUCCESSFUL
            else AuditOutcome.FAILURE,
            details={"status": status, "rc": rc, "host_summary": run.host_summary, "error": error},
        )
    return run


def run_cancel(*, run: Run, user, via: str, request=None) -> Run:
    """Ask a run to stop. A queued run is canceled at once; a running one is
    stopped by its worker (whole process tree) within a second or two."""
    if reason := cancel_refusal_reason(user, run):
        audit_record(
            actor=user,
            via=via,
            verb="run.cancel_refused",
            obj=run,
            service=run.service.slug,
            environment=run.environment.slug,
            details={"reason": reason},
            outcome=AuditOutcome.REFUSED,
            request=request,
        )
        raise LaunchRefused(reason, status=403)
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        if run.is_final:
            raise LaunchRefused(
                f"Run #{run.pk} has already ended ({run.get_status_display()}).", status=409
            )
        now = timezone.now()
        run.cancel_requested_at = now
        run.canceled_by_name = user.get_username()
        fields = ["cancel_requested_at", "canceled_by_name"]
        if run.status == RunStatus.QUEUED:
            run.status = RunStatus.CANCELED
            run.finished_at = now
            run.secret_parameters = ""
            run.secret_credentials = ""
            fields += ["status", "finished_at", "secret_parameters", "secret_credentials"]
        run.save(update_fields=fields)
        audit_record(
            actor=user,
            via=via,
            verb="run.canceled",
            obj=run,
            service=run.service.slug,
            environment=run.environment.slug,
            request=request,
            details={"status_when_canceled": run.status},
        )
    return run


def runs_mark_lost(*, worker: str | None = None, silent_for: float | None = None) -> list[Run]:
    """End as lost the running runs of `worker` (at its restart: it cannot still have
    them), or those whose heartbeat has been silent for `silent_for` seconds (their
    worker died). Returns them, so the caller can clean up what is left on its host.
    Their lock is freed with them."""
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
            lost.append(run_finish(run=run, status=RunStatus.LOST, error=f"Lost: {why}"))
    return lost


def run_queued_max_seconds() -> int:
    """How long a run may wait for a worker (RUN_QUEUED_MAX_SECONDS, an hour by default)."""
    return settings.RUN_QUEUED_MAX_SECONDS


def runs_fail_unstarted(*, waited_for: float) -> list[Run]:
    """End as failed the runs queued for `waited_for` seconds or more: no worker took
    them (none consumes their queue, the message was lost, or the web process died
    before sending it). Their lock is freed with them."""
    cutoff = timezone.now() - timedelta(seconds=waited_for)
    failed = []
    for run in Run.objects.filter(status=RunStatus.QUEUED, created_at__lt=cutoff):
        with transaction.atomic():
            # Checked again under the row lock: a worker may have just started it.
            if (
                not Run.objects.select_for_update()
                .filter(pk=run.pk, status=RunStatus.QUEUED)
                .exists()
            ):
                continue
            error = (
                f"Never started: no worker took it within {int(waited_for)} s; "
                f"is a worker consuming queue {run.queue!r}?"
            )
            failed.append(run_finish(run=run, status=RunStatus.FAILED, error=error))
    return failed


def run_on_this_host(run: Run) -> bool:
    """Whether the run's worker was on this machine (worker names are name@host)."""
    return run.worker.rpartition("@")[2] == socket.gethostname()


def runs_rotate_key() -> int:
    """Re-encrypt the secrets of runs not yet ended with the current key."""
    rotated = 0
    with transaction.atomic():
        for run in Run.objects.select_for_update().exclude(
            secret_parameters="", secret_credentials=""
        ):
            fields = [
                f
                for f in ("secret_parameters", "secret_credentials")
                if getattr(run, f) and not token_is_current(getattr(run, f))
            ]
            for field in fields:
                try:
                    setattr(run, field, token_rotate(getattr(run, field)))
                except DecryptionError as exc:
                    raise DecryptionError(f"Run #{run.pk}: {exc}") from exc
            if fields:
                run.save(update_fields=fields)
                rotated += 1
    return rotated
