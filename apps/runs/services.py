"""Launching, starting, finishing and canceling runs."""

import logging
from typing import NoReturn

from django.db import transaction
from django.utils import timezone

from apps.accounts.permissions import can_cancel_run, refusal_reason
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
from apps.runs.constants import RunStatus
from apps.runs.models import Run
from portal.crypto import decrypt_json, encrypt_json

log = logging.getLogger(__name__)


class LaunchRefused(Exception):
    """A launch the portal will not do; `status` is the HTTP status that says why."""

    def __init__(self, reason: str, *, status: int = 403, field: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.field = field


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
            },
        )
        transaction.on_commit(lambda: run_enqueue(run=run))
    return run


def run_enqueue(*, run: Run) -> None:
    from apps.runs.tasks import run_execute

    run_execute.apply_async(
        args=[run.pk],
        queue=run.queue,
        soft_time_limit=run.timeout + 60,
        time_limit=run.timeout + 120,
    )


def run_start(*, run_id: int, worker: str, pid: int) -> Run | None:
    """Move a queued run to running. Returns None when it was not queued any more
    (canceled meanwhile, or a redelivered task whose run already started)."""
    now = timezone.now()
    with transaction.atomic():
        started = Run.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
            status=RunStatus.RUNNING,
            started_at=now,
            heartbeat_at=now,
            worker=worker,
            worker_pid=pid,
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


def run_finish(
    *,
    run: Run,
    status: str,
    rc: int | None = None,
    host_summary=None,
    error: str = "",
    version: str = "",
) -> Run:
    """Record how a run ended, erase its secrets and write the audit row."""
    with transaction.atomic():
        run.status = status
        run.rc = rc
        run.host_summary = host_summary or {}
        run.error = error
        if version:
            run.version = version
        run.finished_at = timezone.now()
        run.secret_parameters = ""
        run.save(
            update_fields=[
                "status",
                "rc",
                "host_summary",
                "error",
                "version",
                "finished_at",
                "secret_parameters",
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
    if not can_cancel_run(user, run):
        raise LaunchRefused("Only the person who started a run, or Ops, can cancel it.", status=403)
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
            fields += ["status", "finished_at", "secret_parameters"]
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


def runs_mark_lost(*, worker: str) -> int:
    """Runs a worker had when it died (found at its restart) end as lost."""
    lost = 0
    for run in Run.objects.filter(status=RunStatus.RUNNING, worker=worker).select_related(
        "service", "environment"
    ):
        run_finish(
            run=run,
            status=RunStatus.LOST,
            error=f"The worker {worker} stopped while the run was going.",
        )
        lost += 1
    return lost
