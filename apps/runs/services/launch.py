"""Launching a run: one request, one place that decides, one path for the pages, the API
and the runs the system starts by itself."""

import logging
from dataclasses import replace

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit.constants import Outcome
from apps.audit.services import audit_record
from apps.catalog.models import Action
from apps.catalog.parameters import ParameterError
from apps.environments.models import Environment
from apps.runs.constants import RefusalKind, RunStatus
from apps.runs.models import Run
from apps.runs.provenance import repeated_source, source_details, source_run_fields
from apps.runs.queue import QUEUE_DOWN
from apps.runs.services import checks, idempotency
from apps.runs.services.checks import LaunchPlan, LaunchRefused
from apps.runs.services.lifecycle import run_enqueue
from apps.runs.services.request import LaunchRequest
from apps.runs.services.waiting import queue_advance
from portal.crypto import encrypt_json

log = logging.getLogger(__name__)


def _refusal_audit(exc: LaunchRefused | ParameterError, req: LaunchRequest) -> None:
    """Keep a refused launch in the audit log, although nothing else is written."""
    if isinstance(exc, ParameterError):
        details = {
            "reason": "Parameters do not fit the form.",
            "errors": exc.errors,
            "kind": str(RefusalKind.PARAMETERS),
        }
    else:
        details = {"reason": exc.reason, "kind": str(exc.kind)}
        if exc.holder is not None:
            details["lock_held_by"] = exc.holder.pk
        if exc.missing is not None:
            details["missing"] = exc.missing
        if exc.queue is not None:
            details["queue"] = exc.queue
    if req.triggered_by is not None:
        details["on_behalf_of"] = req.user.get_username()
        details["triggered_by"] = req.triggered_by.pk
    action = req.action
    audit_record(
        actor=None if req.triggered_by is not None else req.user,
        via=req.via,
        verb="run.refused",
        object_type="catalog.action",
        object_id=str(action.pk) if action else "",
        object_repr=str(action) if action else "",
        service=req.service.slug if req.service else "",
        environment=req.environment.slug if req.environment else "",
        details=details,
        outcome=Outcome.REFUSED,
        request=req.http_request,
    )


def run_refusal_record(req: LaunchRequest, exc: LaunchRefused) -> None:
    """Keep in the audit log a launch refused before it could be asked of run_launch (a
    promotion with nothing to promote, a rollback with nothing to put back): `req` names
    what is known of it (its action may be None)."""
    _refusal_audit(exc, req)


def run_plan(req: LaunchRequest) -> LaunchPlan:
    """Every check of a launch, in one place, without launching: may the user run it (and
    did they confirm their second factor where the environment asks for it); is the
    playbook version approved; do the parameters fit the form; is the environment locked
    or frozen (an emergency override passes a freeze, for who has the right); does the
    promotion rule hold; the credentials; a live worker consuming the environment's queue;
    the deploy lock; the broker.

    Raises LaunchRefused or ParameterError, each recorded in the audit log."""
    return _planned(replace(req, idempotency_key=""))


def _planned(req: LaunchRequest) -> LaunchPlan | Run:
    """run_plan; but with an idempotency key, a refusal that a twin launch (same user,
    same key) committing meanwhile caused, its deploy lock, answers with the twin's run."""
    try:
        return checks.plan(req)
    except (LaunchRefused, ParameterError) as exc:
        if req.idempotency_key and (run := _replayed(req)) is not None:
            return run
        # A page asking for the second factor is a step, not a refusal; it is tried again.
        if not getattr(exc, "reauthenticate", False):
            _refusal_audit(exc, req)
        raise


def _fingerprint(req: LaunchRequest) -> dict:
    if req.fingerprint is not None:
        return req.fingerprint
    return idempotency.launch_fingerprint(
        "launch",
        {
            "service": req.service.slug,
            "action": req.action.slug,
            "environment": req.environment.slug,
            "parameters": req.parameters,
            "check": req.check,
        },
    )


def _replayed(req: LaunchRequest) -> Run | None:
    return idempotency.launch_key_replay(
        user=req.user,
        key=req.idempotency_key,
        fingerprint=_fingerprint(req),
        via=req.via,
        request=req.http_request,
    )


def run_snapshot(*, action: Action, environment: Environment) -> dict:
    """What a run copies, at launch, from its action (pinned playbook version, form,
    timeout) and environment (inventory, queue): later edits of those never change it."""
    version = action.playbook_version
    return {
        "service": action.service,
        "action": action,
        "environment": environment,
        "action_slug": action.slug,
        "action_label": action.label,
        "action_kind": action.kind,
        "playbook_version": version,
        "playbook_commit": version.commit,
        "playbook_path": version.path,
        "content_hash": version.content_hash,
        "form": action.form,
        "inventory": environment.inventory,
        "inventory_path": environment.inventory_path if environment.inventory_in_source else "",
        "timeout": action.timeout,
        "queue": environment.queue,
    }


def _source(req: LaunchRequest, plan: LaunchPlan) -> dict | None:
    """The build the run deploys: as given, or that of the run it repeats (the version
    verified where it is promoted from, the one rolled back to, the run run again)."""
    if req.source is not None or req.check:
        return req.source
    if req.promoted_from is not None:
        where = req.promoted_from
    elif req.rollback_of is not None:
        where = req.environment
    elif req.rerun_of is not None and req.rerun_of.version == plan.version:
        return req.rerun_of.source
    else:
        return None
    return repeated_source(service=req.service, environment=where, version=plan.version)


def _run_create(req: LaunchRequest, plan: LaunchPlan) -> Run:
    user, credentials = req.user, plan.credentials
    waits = {"status": RunStatus.WAITING} if plan.waits else {"queued_at": timezone.now()}
    return Run.objects.create(
        **waits,
        **run_snapshot(action=req.action, environment=req.environment),
        **source_run_fields(_source(req, plan)),
        parameters=plan.masked,
        secret_parameters=encrypt_json(plan.secrets) if plan.secrets else "",
        version=plan.version,
        check_mode=req.check,
        rerun_of=req.rerun_of,
        rollback_of=req.rollback_of,
        promoted_from=req.promoted_from,
        reason=req.reason.strip() if req.rollback_of else "",
        emergency=plan.emergency,
        emergency_reason=plan.emergency_reason,
        auto_verify=req.auto_verify and not req.check,
        triggered_by=req.triggered_by,
        api_token=getattr(user, "api_token", None),
        requested_by=user,
        requested_by_name=user.get_username(),
        credentials=[
            {"name": c["name"], "kind": c["kind"], "variable": c["variable"]} for c in credentials
        ],
        secret_credentials=encrypt_json(credentials) if credentials else "",
    )


def _launch_details(req: LaunchRequest, plan: LaunchPlan, run: Run) -> dict:
    version = req.action.playbook_version
    details = {
        "action": req.action.slug,
        "parameters": plan.masked,
        "check": req.check,
        "playbook_commit": version.commit,
        "playbook_path": version.path,
        "content_hash": version.content_hash,
        "credentials": [c["name"] for c in plan.credentials],
    }
    if plan.version:
        details["version"] = plan.version
    if plan.current is not None:
        details["replaces"] = plan.current.version
    if req.rollback_of is not None:
        details["rollback_of"] = req.rollback_of.pk
        details["reason"] = run.reason
    if req.promoted_from is not None:
        details["promoted_from"] = req.promoted_from.slug
    if source := source_details(run):
        details["source"] = source
    if plan.waits:
        details["waits"] = True  # in the deploy queue
    if plan.emergency:
        details["emergency"] = True
        details["emergency_reason"] = run.emergency_reason
    if req.triggered_by is not None:
        details["on_behalf_of"] = req.user.get_username()
        details["triggered_by"] = req.triggered_by.pk
    return details


def run_launch(req: LaunchRequest) -> Run:
    """Check everything (run_plan), then create a queued Run and its audit row in one
    transaction; the worker task is enqueued on the environment's queue after commit.

    One queued or running run per service and environment holds the deploy lock
    (a partial unique index, so it holds under concurrent launches); a second one
    is refused with 409 naming the holder, or, when the request queues (`when_locked`,
    or the environment's default), waits in the deploy queue (services/waiting.py) and
    starts when its turn comes. Dry runs never take it. When the broker
    cannot be reached nothing is created (503); should it drop between that check
    and the enqueue, the run ends at once as failed, never left queued.

    With an idempotency key, the same key from the same user within a day answers with
    the run the first launch created (its `replayed` True), also when both were asked at
    once; the key with another request is refused (422). The key is held in the
    transaction that creates the run. The caller asks idempotency.launch_key_replay
    first (the API does, before it looks anything up): here the key is looked up only
    when it explains a refusal or a failed insert, so a key asked again answers with
    its run whichever way the checks go.

    Raises LaunchRefused or ParameterError, each recorded in the audit log."""
    plan = _planned(req)
    if isinstance(plan, Run):
        return plan
    enqueued: list[bool] = []
    try:
        run = _run_write(req, plan, enqueued)
    except IntegrityError:
        # A twin launch with the same key committed first; or another launch took the
        # deploy lock between the check and this insert.
        if req.idempotency_key and (run := _replayed(req)) is not None:
            return run
        holder = None if req.check else checks.lock_holder(req.service, req.environment)
        if holder is None:
            raise
        if checks.queues(req) and not plan.waits:
            return _run_write(req, replace(plan, waits=True), enqueued)
        refused = checks.locked(holder)
        _refusal_audit(refused, req)
        raise refused from None
    if req.idempotency_key:
        idempotency.launch_keys_forget_expired_now_and_then()
    if enqueued == [False]:
        if req.idempotency_key:
            idempotency.launch_key_release(run=run)
        raise LaunchRefused(QUEUE_DOWN, status=503)
    return run


def _run_write(req: LaunchRequest, plan: LaunchPlan, enqueued: list[bool]) -> Run:
    """The key (if any), the run and its audit row, in one transaction; the enqueue
    after commit appends whether it reached the broker to `enqueued`."""
    with transaction.atomic():
        run = _run_create(req, plan)
        if req.idempotency_key:
            # Taken with its run (no UPDATE after): should a twin launch hold the key,
            # the IntegrityError undoes the run with the rest of the transaction.
            idempotency.launch_key_take(
                user=req.user, key=req.idempotency_key, fingerprint=_fingerprint(req), run=run
            )
        audit_record(
            actor=None if req.triggered_by is not None else req.user,
            via=req.via,
            verb="run.emergency" if plan.emergency else "run.requested",
            obj=run,
            service=req.service.slug,
            environment=req.environment.slug,
            request=req.http_request,
            details=_launch_details(req, plan, run),
        )
        if plan.waits:
            # Should the lock have freed since the check, nobody else would move the line.
            transaction.on_commit(
                lambda: queue_advance(service_id=run.service_id, environment_id=run.environment_id)
            )
        else:
            transaction.on_commit(lambda: enqueued.append(run_enqueue(run=run)))
    return run
