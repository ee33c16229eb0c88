"""What the system launches by itself after a run ended: the verification of a deploy
that asked for it, the promotion of a verified version onto the environments set to
promote automatically, and the automatic rollback after a failed verification where the
environment asks for it. Hangs on `run_ended` (see apps/runs/apps.py)."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.audit.constants import Via
from apps.catalog.constants import ActionKind, ParameterInput
from apps.catalog.parameters import ParameterError
from apps.catalog.selectors import deploy_action, verify_action
from apps.environments.models import Environment
from apps.runs.constants import TASK_FOLLOW_UPS, RunStatus
from apps.runs.models import Run
from apps.runs.queue import QUEUE_ERRORS, task_send
from apps.runs.selectors import deployments
from apps.runs.services.auto_rollback import (
    FAILED_VERIFICATION,
    auto_rollback_request,
    wants_auto_rollback,
)
from apps.runs.services.checks import LaunchRefused
from apps.runs.services.launch import LaunchRequest, run_launch
from apps.runs.services.waiting import acting_user, queue_advance

log = logging.getLogger(__name__)


def run_ended_follow_ups(sender, *, run: Run, **kwargs) -> None:
    """Receiver of `run_ended`: hand what a successful run starts by itself to a task of
    its own (acks_late, so a worker dying meanwhile does not lose it; the reaper catches
    what is still left)."""
    wanted = run.status == RunStatus.SUCCESSFUL and _wants_follow_up(run)
    if not (wanted or wants_auto_rollback(run)):
        return
    try:
        task_send(TASK_FOLLOW_UPS, args=[run.pk], queue=settings.CELERY_HOUSEKEEPING_QUEUE)
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
    raises. The deploy queue, which waited for the verification, moves on after.

    A verification that failed on an environment set to roll back by itself launches
    the automatic rollback (services/auto_rollback.py) the same way."""
    with transaction.atomic():
        marked = Run.objects.filter(
            pk=run.pk, status__in=[RunStatus.SUCCESSFUL, *FAILED_VERIFICATION],
            follow_up_done=False,
        ).update(follow_up_done=True)  # fmt: skip
        if not marked:
            return []
        run = Run.objects.select_related(
            "service", "environment", "requested_by", "api_token", "triggered_by"
        ).get(pk=run.pk)
        launched, errors = _follow_ups(run)
        if errors:
            Run.objects.filter(pk=run.pk).update(follow_up_error="\n".join(errors))
    if run.auto_verify or wants_auto_rollback(run):
        # The deploy queue waited for its verification (or the automatic rollback) to
        # take the lock, or to be refused.
        queue_advance(service_id=run.service_id, environment_id=run.environment_id)
    return launched


def _requests(run: Run, user) -> tuple[list[LaunchRequest], list[str]]:
    """The launches `run` calls for, and why others it would call for are not made."""
    service, environment = run.service, run.environment
    base = dict(user=user, service=service, given_as=ParameterInput.JSON, via=Via.SYSTEM)
    requests, errors = [], []
    if run.auto_verify and (action := verify_action(service=service, environment=environment)):
        requests.append(
            LaunchRequest(**base, action=action, environment=environment, triggered_by=run)
        )
    if run.action_kind != ActionKind.VERIFY or not run.version:
        return requests, errors
    for target in deployments.next_environments(environment):
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
        parameters = deployments.version_parameters(
            service=service, environment=environment, version=run.version, action=action
        )
        requests.append(
            LaunchRequest(
                **base,
                action=action,
                environment=target,
                parameters=parameters,
                promoted_from=environment,
                auto_verify=True,
                triggered_by=run,
            )
        )
    return requests, errors


def _follow_ups(run: Run) -> tuple[list[Run], list[str]]:
    if run.status != RunStatus.SUCCESSFUL:
        if not wants_auto_rollback(run):
            return [], []
        rollback = auto_rollback_request(run)
        if rollback is None:
            return [], []
        if isinstance(rollback, str):
            return [], [rollback]
        requests, errors = [rollback], []
    else:
        user, why_not = acting_user(run)
        if user is None:
            return [], [why_not]
        requests, errors = _requests(run, user)
    launched: list[Run] = []
    for req in requests:
        where = f"{req.action.label} on {req.environment}"
        try:
            launched.append(run_launch(req))
        except LaunchRefused as exc:
            errors.append(f"{where}: {exc.reason}")
        except ParameterError as exc:
            fields = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.errors.items())
            errors.append(f"{where}: parameters do not fit ({fields}).")
        except Exception:
            log.exception("The follow-up %s of run %s failed", req.action.slug, run.pk)
            errors.append(f"{where}: internal error, see the worker's log.")
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
    current = deployments.current_version(service=service, environment=target)
    if current is not None and current.version == version:
        return SKIP_QUIETLY
    source_current = deployments.current_version(
        service=service, environment=verification.environment
    )
    if source_current is not None and source_current.rollback_of_id is not None:
        return (
            f"Not promoted to {target}: {version} is on {verification.environment} by a "
            "rollback. Promote it by hand if it is meant."
        )
    if deployments.was_deployed(service=service, environment=target, version=version):
        return (
            f"Not promoted to {target}: {version} ran there before and was replaced. "
            "Promote it by hand if it is meant."
        )
    return None


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
    failed_verifications = Run.objects.filter(
        status__in=FAILED_VERIFICATION,
        action_kind=ActionKind.VERIFY,
        environment__auto_rollback=True,
        check_mode=False,
        follow_up_done=False,
        finished_at__lt=now - timedelta(seconds=waited_for),
        finished_at__gte=now - timedelta(days=1),
    )
    return list(candidates) + list(failed_verifications)
