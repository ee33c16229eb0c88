"""Launching, starting, finishing and canceling runs."""

import logging
import socket
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import NoReturn

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from kombu.exceptions import OperationalError as QueueError

from apps.accounts.permissions import (
    can_override_freeze,
    cancel_refusal_reason,
    reauthentication_reason,
    refusal_reason,
)
from apps.audit.models import Outcome as AuditOutcome
from apps.audit.models import Via as AuditVia
from apps.audit.services import audit_record
from apps.catalog.constants import ActionKind
from apps.catalog.models import Action, Service
from apps.catalog.parameters import (
    ParameterError,
    parameters_clean,
    parameters_masked,
    secret_names,
)
from apps.catalog.selectors import deploy_action, verify_action
from apps.environments.models import Environment
from apps.environments.selectors import CredentialConflict, credentials_for_run, launch_block
from apps.environments.services import credential_values
from apps.insights import selectors as insights
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
        missing: dict | None = None,
    ):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.field = field
        self.holder = holder  # the run holding the deploy lock, for a 409
        self.missing = missing  # what the promotion rule lacks: environment, version, url


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
    triggered_by=None,
) -> NoReturn:
    """Record the refusal in the audit log (even though nothing else is written), then raise."""
    if isinstance(exc, ParameterError):
        details = {"reason": "Parameters do not fit the form.", "errors": exc.errors}
    else:
        details = {"reason": exc.reason}
        if exc.holder is not None:
            details["lock_held_by"] = exc.holder.pk
        if exc.missing is not None:
            details["missing"] = exc.missing
    if triggered_by is not None:
        details["on_behalf_of"] = user.get_username()
        details["triggered_by"] = triggered_by.pk
    audit_record(
        actor=None if triggered_by is not None else user,
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


@dataclass
class LaunchPlan:
    """What a launch will run with, once every check passed (see run_plan)."""

    clean: dict
    masked: dict
    secrets: dict
    version: str
    credentials: list[dict]
    emergency: bool
    current: Run | None  # what runs on the environment now (deploys and rollbacks)
    emergency_reason: str = ""


def run_plan(
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
    rollback_of: Run | None = None,
    promoted_from: Environment | None = None,
    reason: str = "",
    emergency_reason: str = "",
    auto_verify: bool = False,
    triggered_by: Run | None = None,
) -> LaunchPlan:
    """Every check of a launch, in one place, without launching: may the user run it;
    is the playbook version approved; do the parameters fit the form; is the environment
    locked or frozen (an emergency override passes a freeze, for who has the right); does
    the promotion rule hold; the credentials; the deploy lock; the queue.

    Raises LaunchRefused or ParameterError, recorded in the audit log."""
    refusal = dict(
        user=user,
        service=service,
        action=action,
        environment=environment,
        via=via,
        request=request,
        triggered_by=triggered_by,
    )

    def refuse(exc):
        _refuse(exc, **refusal)

    if action.service_id != service.pk:
        refuse(
            LaunchRefused(f"{service} has no action {action.slug!r}.", status=400, field="action")
        )
    if why := refusal_reason(user, action=action, environment=environment):
        refuse(LaunchRefused(why, status=403))
    if why := reauthentication_reason(user, environment=environment, request=request):
        refuse(LaunchRefused(why, status=403))
    version = action.playbook_version
    if not version.is_approved:
        refuse(
            LaunchRefused(f"The playbook version of {action.label} is not approved.", status=409)
        )
    try:
        clean = parameters_clean(action.form, parameters, from_api=from_api)
    except ParameterError as exc:
        # Raised as is, so pages and the API can show each field's errors.
        refuse(exc)
    secrets = {k: clean[k] for k in secret_names(action.form) if clean.get(k) not in (None, "")}
    masked = parameters_masked(action.form, clean)
    run_version = str(clean.get(action.version_field) or "") if action.version_field else ""
    if len(run_version) > RUN_VERSION_MAX_CHARS:
        refuse(
            ParameterError({action.version_field: [f"At most {RUN_VERSION_MAX_CHARS} characters."]})
        )
    if action.timeout > settings.RUN_TIMEOUT_MAX:
        refuse(
            LaunchRefused(
                f"The timeout of {action.label} ({action.timeout} s) is above the longest a run "
                f"may take here ({settings.RUN_TIMEOUT_MAX} s): Ops must lower it.",
                status=409,
            )
        )
    current = insights.current_version(service=service, environment=environment)
    if action.kind == ActionKind.VERIFY and not check:
        # A verification checks what runs there now, whatever it is asked.
        running = current.version if current else ""
        if run_version and run_version != running:
            refuse(
                ParameterError(
                    {
                        action.version_field: [
                            f"{environment} runs {running or 'no version'}: a verification "
                            "checks what runs there."
                        ]
                    }
                )
            )
        run_version = running
    if problem := _rollback_problem(
        rollback_of, service=service, environment=environment, reason=reason, current=current
    ):
        refuse(problem)
    if action.kind == ActionKind.ROLLBACK and rollback_of is not None and not run_version:
        # What a rollback action will put back, until its playbook reports it.
        targets = insights.rollback_targets(
            service=service, environment=environment, current=current
        )
        run_version = targets[0].version if targets else ""
    if (
        auto_verify
        and not check
        and verify_action(service=service, environment=environment) is None
    ):
        refuse(
            LaunchRefused(
                f"{service} has no verify action on {environment}: nothing to verify with.",
                status=400,
                field="verify",
            )
        )
    emergency = False
    block = launch_block(service=service, environment=environment)
    if block and check and block.overridable:
        block = None  # a dry run changes nothing: a freeze lets it through, a lock does not
    if block:
        emergency_reason = emergency_reason.strip()
        if (
            block.overridable
            and triggered_by is not None
            and triggered_by.emergency
            and action.kind == ActionKind.VERIFY
        ):
            # The verification of an emergency run may follow it through the freeze.
            emergency_reason = emergency_reason or (
                f"Verification of emergency run #{triggered_by.pk}: {triggered_by.emergency_reason}"
            )
        elif not (block.overridable and emergency_reason):
            hint = ""
            if block.overridable and can_override_freeze(user, environment=environment):
                hint = " An emergency override, with its reason, can pass it."
            refuse(LaunchRefused(block.reason + hint, status=409))
        elif triggered_by is not None or not can_override_freeze(user, environment=environment):
            refuse(
                LaunchRefused(
                    f"{block.reason} Only those with the emergency right on {environment} may "
                    "override it.",
                    status=403,
                )
            )
        emergency = True
    if not check and (
        problem := _promotion_problem(
            service=service,
            action=action,
            environment=environment,
            version=run_version,
            rollback_of=rollback_of,
        )
    ):
        refuse(problem)
    try:
        credentials = [
            credential_values(c)
            for c in credentials_for_run(action=action, environment=environment)
        ]
    except (CredentialConflict, DecryptionError) as exc:
        refuse(LaunchRefused(f"Credentials: {exc}", status=409))
    if clash := {c["variable"] for c in credentials} & {f["name"] for f in action.form}:
        refuse(
            LaunchRefused(
                f"A credential of {environment} and a field of the form both set "
                f"{', '.join(sorted(clash))}: Ops must rename one.",
                status=409,
            )
        )
    if not check and (holder := _lock_holder(service=service, environment=environment)):
        refuse(_locked(holder))
    if why := queue_unreachable_reason():
        refuse(LaunchRefused(why, status=503))
    return LaunchPlan(
        clean,
        masked,
        secrets,
        run_version,
        credentials,
        emergency,
        current,
        emergency_reason if emergency else "",
    )


def _rollback_problem(
    target: Run | None, *, service: Service, environment: Environment, reason: str, current
) -> LaunchRefused | None:
    """A rollback undoes what runs there now: `target` must be the run that put it there."""
    if target is None:
        return None
    if target.service_id != service.pk or target.environment_id != environment.pk:
        return LaunchRefused(
            f"Run #{target.pk} did not run {service} on {environment}: it cannot be rolled back "
            "from here.",
            status=400,
            field="rollback_of",
        )
    if target.check_mode or target.status != RunStatus.SUCCESSFUL:
        return LaunchRefused(
            f"Run #{target.pk} changed nothing (it is a dry run or did not succeed): there is "
            "nothing to roll back.",
            status=400,
            field="rollback_of",
        )
    if current is None or target.pk != current.pk:
        return LaunchRefused(
            f"Run #{target.pk} is not what runs on {environment} now"
            + (f" (run #{current.pk} is)" if current else "")
            + ": only the current version can be rolled back.",
            status=409,
            field="rollback_of",
        )
    if not reason.strip():
        return LaunchRefused("Say why you roll back.", status=400, field="reason")
    return None


def _promotion_problem(
    *, service: Service, action: Action, environment: Environment, version: str, rollback_of
) -> LaunchRefused | None:
    """The promotion rule: the version was deployed and then verified on the environment
    before this one. A rollback to a version that already ran here successfully is exempt."""
    if action.kind != ActionKind.DEPLOY or not environment.require_verified:
        return None
    source = insights.previous_environment(environment)
    if source is None:
        return None
    if not version:
        return LaunchRefused(
            f"{environment} accepts only verified versions, and {action.label} names no version "
            "field: Ops must set it.",
            status=409,
        )
    if rollback_of is not None and insights.was_deployed(
        service=service, environment=environment, version=version
    ):
        return None
    if insights.verification(service=service, environment=source, version=version):
        return None
    deployed = insights.was_deployed(service=service, environment=source, version=version)
    url = reverse("catalog:service", args=[service.slug]) + f"#env-{source.slug}"
    if deployed:
        what = f"it was deployed there but not verified since: run its verify action on {source}"
    else:
        what = f"deploy it to {source} and verify it there"
    return LaunchRefused(
        f"{service} {version} has not been verified on {source}, and {environment} accepts only "
        f"versions verified there first: {what}.",
        status=409,
        field=action.version_field,
        missing={
            "environment": source.slug,
            "version": version,
            "deployed": deployed,
            "verified": False,
            "url": url,
        },
    )


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
    rollback_of: Run | None = None,
    promoted_from: Environment | None = None,
    reason: str = "",
    emergency_reason: str = "",
    auto_verify: bool = False,
    triggered_by: Run | None = None,
) -> Run:
    """Check everything (run_plan), then create a queued Run and its audit row in one
    transaction; the worker task is enqueued on the environment's queue after commit.

    One queued or running run per service and environment holds the deploy lock
    (a partial unique index, so it holds under concurrent launches); a second one
    is refused with 409 naming the holder. Dry runs never take it. When the broker
    cannot be reached nothing is created (503); should it drop between that check
    and the enqueue, the run ends at once as failed, never left queued.

    `triggered_by` marks a run the system launches by itself (verification after a
    deploy, promotion after a verification) on behalf of `user`.

    Raises LaunchRefused (recorded in the audit log) or ParameterError.
    """
    plan = run_plan(
        user=user,
        service=service,
        action=action,
        environment=environment,
        parameters=parameters,
        check=check,
        from_api=from_api,
        via=via,
        request=request,
        rollback_of=rollback_of,
        promoted_from=promoted_from,
        reason=reason,
        emergency_reason=emergency_reason,
        auto_verify=auto_verify,
        triggered_by=triggered_by,
    )
    version = action.playbook_version
    credentials = plan.credentials
    enqueued: list[bool] = []
    try:
        with transaction.atomic():
            run = Run.objects.create(
                **run_snapshot(action=action, environment=environment),
                parameters=plan.masked,
                secret_parameters=encrypt_json(plan.secrets) if plan.secrets else "",
                version=plan.version,
                check_mode=check,
                rerun_of=rerun_of,
                rollback_of=rollback_of,
                promoted_from=promoted_from,
                reason=reason.strip() if rollback_of else "",
                emergency=plan.emergency,
                emergency_reason=plan.emergency_reason,
                auto_verify=auto_verify and not check,
                triggered_by=triggered_by,
                api_token=getattr(user, "api_token", None),
                requested_by=user,
                requested_by_name=user.get_username(),
                credentials=[
                    {"name": c["name"], "kind": c["kind"], "variable": c["variable"]}
                    for c in credentials
                ],
                secret_credentials=encrypt_json(credentials) if credentials else "",
            )
            details = {
                "action": action.slug,
                "parameters": plan.masked,
                "check": check,
                "playbook_commit": version.commit,
                "playbook_path": version.path,
                "content_hash": version.content_hash,
                "credentials": [c["name"] for c in credentials],
            }
            if plan.version:
                details["version"] = plan.version
            if plan.current is not None:
                details["replaces"] = plan.current.version
            if rollback_of is not None:
                details["rollback_of"] = rollback_of.pk
                details["reason"] = run.reason
            if promoted_from is not None:
                details["promoted_from"] = promoted_from.slug
            if plan.emergency:
                details["emergency"] = True
                details["emergency_reason"] = run.emergency_reason
            if triggered_by is not None:
                details["on_behalf_of"] = user.get_username()
                details["triggered_by"] = triggered_by.pk
            audit_record(
                actor=None if triggered_by is not None else user,
                via=via,
                verb="run.emergency" if plan.emergency else "run.requested",
                obj=run,
                service=service.slug,
                environment=environment.slug,
                request=request,
                details=details,
            )
            transaction.on_commit(lambda: enqueued.append(run_enqueue(run=run)))
    except IntegrityError:
        # Another launch took the lock between the check above and this insert.
        holder = None if check else _lock_holder(service=service, environment=environment)
        if holder is None:
            raise
        _refuse(
            _locked(holder),
            user=user,
            service=service,
            action=action,
            environment=environment,
            via=via,
            request=request,
            triggered_by=triggered_by,
        )
    if enqueued == [False]:
        raise LaunchRefused(QUEUE_DOWN, status=503)
    return run


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
        "timeout": action.timeout,
        "queue": environment.queue,
    }


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
    can always find them.

    A lock or a freeze that began while it waited is checked again here: the run
    then ends failed without starting (an emergency run passes a freeze)."""
    # One table first: a message for a run that is gone (or not queued) costs one lookup.
    queued = Run.objects.filter(pk=run_id, status=RunStatus.QUEUED).first()
    if queued is None:
        return None
    if (
        (block := launch_block(service=queued.service, environment=queued.environment))
        # An emergency run passes a freeze, and so does a dry run; nothing passes a lock.
        and not (block.overridable and (queued.emergency or queued.check_mode))
    ):
        run_finish(run=queued, status=RunStatus.FAILED, error=f"Not started: {block.reason}")
        return None
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
        if status == RunStatus.SUCCESSFUL and not run.check_mode:
            transaction.on_commit(lambda: run_follow_up_enqueue(run=run))
    return run


def run_follow_up_enqueue(*, run: Run) -> None:
    """Hand what a successful run starts by itself to a task of its own (acks_late, so a
    worker dying meanwhile does not lose it; the reaper catches what is still left)."""
    from apps.runs.tasks import run_follow_ups

    if not _wants_follow_up(run):
        return
    try:
        run_follow_ups.apply_async(args=[run.pk], queue=settings.CELERY_TASK_DEFAULT_QUEUE)
    except QUEUE_ERRORS as exc:
        log.warning("Follow-ups of run %s not queued (%s); launching them here.", run.pk, exc)
        run_follow_up(run=run)


def _wants_follow_up(run: Run) -> bool:
    return not run.check_mode and (
        run.auto_verify or (run.action_kind == ActionKind.VERIFY and bool(run.version))
    )


def run_follow_up(*, run: Run) -> list[Run]:
    """What the system launches by itself when `run` succeeded, on behalf of whoever
    asked for it (within the limits of the API token it came with): the service's
    verify action after a deploy that asked for it, and the deploy of a verified
    version onto each next environment set to promote automatically. Done once: the
    run is marked in the same transaction as the runs it starts. A follow-up that is
    refused is noted on `run` (and, as every refusal, in the audit log); it never
    raises."""
    with transaction.atomic():
        marked = Run.objects.filter(
            pk=run.pk, status=RunStatus.SUCCESSFUL, follow_up_done=False
        ).update(follow_up_done=True)
        if not marked:
            return []
        run = Run.objects.select_related(
            "service", "environment", "requested_by", "api_token", "triggered_by"
        ).get(pk=run.pk)
        launched, errors = _follow_ups(run)
        if errors:
            Run.objects.filter(pk=run.pk).update(follow_up_error="\n".join(errors))
    return launched


def _follow_ups(run: Run) -> tuple[list[Run], list[str]]:
    launched: list[Run] = []
    errors: list[str] = []
    user = run.requested_by
    if user is None or not user.is_active:
        return launched, [f"{run.requested_by_name} cannot act any more: nothing was started."]
    if run.api_token_id is not None:
        if run.api_token is None or not run.api_token.is_active:
            return launched, ["The API token it was launched with is revoked or expired."]
        user.api_token = run.api_token  # its limits hold for what follows
    service, environment = run.service, run.environment
    follow_ups = []
    if run.auto_verify and (action := verify_action(service=service, environment=environment)):
        follow_ups.append((action, environment, {}, {}))
    if run.action_kind == ActionKind.VERIFY and run.version:
        for target in insights.next_environments(environment):
            if not target.auto_promote:
                continue
            if why_not := _promotion_skip(run, target=target):
                if why_not is not SKIP_QUIETLY:
                    errors.append(why_not)
                continue
            action = deploy_action(service=service, environment=target)
            if action is None:
                errors.append(f"No deploy action of {service} on {target} to promote with.")
                continue
            parameters = insights.version_parameters(
                service=service, environment=environment, version=run.version, action=action
            )
            follow_ups.append(
                (action, target, parameters, {"promoted_from": environment, "auto_verify": True})
            )
    for action, target, parameters, extra in follow_ups:
        try:
            launched.append(
                run_launch(
                    user=user,
                    service=service,
                    action=action,
                    environment=target,
                    parameters=parameters,
                    from_api=True,
                    via=AuditVia.SYSTEM,
                    triggered_by=run,
                    **extra,
                )
            )
        except LaunchRefused as exc:
            errors.append(f"{action.label} on {target}: {exc.reason}")
        except ParameterError as exc:
            fields = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.errors.items())
            errors.append(f"{action.label} on {target}: parameters do not fit ({fields}).")
        except Exception:
            log.exception("The follow-up %s of run %s failed", action.slug, run.pk)
            errors.append(f"{action.label} on {target}: internal error, see the worker's log.")
    return launched, errors


SKIP_QUIETLY = "nothing to do"


def _promotion_skip(verification: Run, *, target: Environment) -> str | None:
    """Why a verified version is not promoted onto `target` by itself: it runs there
    already (quietly), it came back by a rollback, or it ran there before and was
    replaced (promoting it would be a downgrade). Those are for a person to decide."""
    service, version = verification.service, verification.version
    if target.confirm_runs or target.require_mfa:
        return (
            f"Not promoted to {target}: its runs need a confirmation or a second factor, "
            "which no automatic run has."
        )
    current = insights.current_version(service=service, environment=target)
    if current is not None and current.version == version:
        return SKIP_QUIETLY
    source_current = insights.current_version(service=service, environment=verification.environment)
    if source_current is not None and source_current.rollback_of_id is not None:
        return (
            f"Not promoted to {target}: {version} is on {verification.environment} by a "
            "rollback. Promote it by hand if it is meant."
        )
    if insights.was_deployed(service=service, environment=target, version=version):
        return (
            f"Not promoted to {target}: {version} ran there before and was replaced. "
            "Promote it by hand if it is meant."
        )
    return None


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


def runs_follow_ups_missed(*, waited_for: float) -> list[Run]:
    """Successful runs of the last day whose follow-ups were never launched, `waited_for`
    seconds or more after they ended (the task was lost with its worker)."""
    now = timezone.now()
    candidates = Run.objects.filter(
        status=RunStatus.SUCCESSFUL,
        check_mode=False,
        follow_up_done=False,
        finished_at__lt=now - timedelta(seconds=waited_for),
        finished_at__gte=now - timedelta(days=1),
    ).filter(Q(auto_verify=True) | (Q(action_kind=ActionKind.VERIFY) & ~Q(version="")))
    return list(candidates)


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
