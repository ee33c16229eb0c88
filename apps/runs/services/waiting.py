"""The deploy queue: runs that wait for the deploy lock of their service on their
environment, and start, in arrival order, when it frees.

A run joins the line at launch (status *waiting*) when the lock is held and the launch
asked to queue (`when_locked`, or its environment's default). When the lock frees
(`run_ended`, see apps/runs/apps.py; the reaper also looks every RUN_REAP_SECONDS, so a
web or worker process dying at the wrong moment loses nothing) the first in line is
looked at again, as of now:

- a deploy whose version is older than one that succeeded there while it waited is
  skipped, *superseded* (it would roll the environment back by accident; rollbacks are
  exempt: they say what they undo);
- a freeze or a lock of the environment keeps it, and all behind it, waiting, with the
  reason shown;
- its requester's right to run it, its action and the promotion rule are checked again:
  one that does not hold any more ends it *failed*, never started, with the reason; so
  does a queue no live worker consumes (it would only wait for nobody);
- otherwise it is queued for a worker, and holds the lock from then on.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Min
from django.utils import timezone
from packaging.version import InvalidVersion, Version

from apps.accounts.permissions import refusal_reason
from apps.audit.constants import Via
from apps.audit.services import audit_record
from apps.catalog.constants import ActionKind
from apps.environments.selectors import launch_block
from apps.runs.constants import RunStatus
from apps.runs.models import Run
from apps.runs.selectors import deployments
from apps.runs.services.checks import (
    lock_holder,
    promotion_problem,
    waiting_line,
    worker_problem,
)
from apps.runs.services.lifecycle import EndNote, run_end, run_enqueue
from apps.runs.services.request import LaunchRequest

log = logging.getLogger(__name__)

# Runs skipped or ended in one pass before it gives the line back (a reaper comes again).
ADVANCE_MAX_STEPS = 50
# How long a deploy's verification, not launched yet, keeps the line waiting.
VERIFICATION_FIRST = timedelta(minutes=2)


def acting_user(run: Run):
    """Who acts for `run` after its launch (its start after waiting in the deploy queue,
    its follow-ups): its requester, within the limits of the token it came with; or why
    nobody can."""
    user = run.requested_by
    if user is None or not user.is_active:
        return None, f"{run.requested_by_name} cannot act any more: nothing was started."
    if run.api_token_id is not None:
        if run.api_token is None or not run.api_token.is_active:
            return None, "The API token it was launched with is revoked or expired."
        user.api_token = run.api_token  # its limits hold for what follows
    return user, None


@dataclass(frozen=True)
class WaitState:
    """Where a waiting run stands: its place in line (1 = next), the run holding the
    lock (if one does), and why it waits, in a sentence."""

    position: int
    holder: Run | None
    reason: str


def run_wait_state(run: Run) -> WaitState | None:
    """Where `run` stands in its deploy queue; None when it does not wait."""
    if run.status != RunStatus.WAITING:
        return None
    position = waiting_line(run.service_id, run.environment_id).filter(pk__lte=run.pk).count()
    holder = lock_holder(run.service_id, run.environment_id)
    if run.wait_reason and position == 1:
        reason = run.wait_reason
    elif holder is not None:
        ahead = position - 1
        behind = f", behind {ahead} other{'s' if ahead > 1 else ''} in line" if ahead else ""
        reason = (
            f"Waits for run #{holder.pk} ({holder.action_label}, "
            f"{holder.get_status_display().lower()}) to end{behind}."
        )
    elif position > 1:
        reason = f"Waits behind {position - 1} other run{'s' if position > 2 else ''} in line."
    else:
        reason = "Next in line: starts in a moment."
    return WaitState(position=position, holder=holder, reason=reason)


def _newer(version: str, than: str) -> bool:
    """Whether `version` is newer than `than`, where both read as versions (PEP 440,
    which takes SemVer's x.y.z too); unknown otherwise (False)."""
    try:
        return Version(version) > Version(than)
    except InvalidVersion:
        return False


def _superseded_by(run: Run) -> Run | None:
    """The deploy that succeeded on the run's environment while it waited with a newer
    version than its own, if one did. Rollbacks, and runs with no version, never are."""
    if run.action_kind != ActionKind.DEPLOY or run.rollback_of_id or not run.version:
        return None
    current = deployments.current_version(service=run.service, environment=run.environment)
    if current is None or current.finished_at is None or current.finished_at < run.created_at:
        return None
    newer = _newer(current.version, run.version) or (
        current.source_committed_at is not None
        and run.source_committed_at is not None
        and current.source_committed_at > run.source_committed_at
    )
    return current if newer else None


def _rules_broken(run: Run) -> str:
    """What stops the run now, of the rules a launch is checked against (its requester's
    right, its action, the promotion rule, a live worker for its queue); "" when they
    all hold."""
    user, why_not = acting_user(run)
    if user is None:
        return why_not
    action = run.action
    if action is None:
        return f"Its action {run.action_label} was deleted while it waited."
    if why := refusal_reason(user, action=action, environment=run.environment):
        return why
    req = LaunchRequest(
        user=user,
        service=run.service,
        action=action,
        environment=run.environment,
        rollback_of=run.rollback_of,
        via=Via.SYSTEM,
    )
    if problem := promotion_problem(req, version=run.version):
        return problem.reason
    if problem := worker_problem(queue=run.queue, environment=run.environment):
        return problem.reason
    return ""


def _skip(run: Run, *, status: str, error: str, verb: str, details: dict) -> None:
    run_end(
        run=run,
        status=status,
        error=error,
        note=EndNote(verb=verb, details=details),
    )


def _hold(run: Run, reason: str) -> None:
    """Keep the line waiting behind a freeze or a lock, saying so (once per reason)."""
    if run.wait_reason != reason:
        Run.objects.filter(pk=run.pk, status=RunStatus.WAITING).update(wait_reason=reason)


def _send(run: Run) -> bool:
    """Move the first in line to queued (it takes the deploy lock) and send it to a
    worker once committed; False when another run took the lock first."""
    now = timezone.now()
    try:
        with transaction.atomic():
            moved = Run.objects.filter(pk=run.pk, status=RunStatus.WAITING).update(
                status=RunStatus.QUEUED, queued_at=now, wait_reason=""
            )
            if not moved:
                return False
            run.refresh_from_db()
            audit_record(
                actor=None,
                via=Via.SYSTEM,
                verb="run.queued",
                obj=run,
                service=run.service.slug,
                environment=run.environment.slug,
                details={"waited_seconds": round((now - run.created_at).total_seconds(), 1)},
            )
            transaction.on_commit(lambda: run_enqueue(run=run))
    except IntegrityError:
        return False  # the deploy lock's unique index: someone else holds it now
    return True


def _step(run: Run) -> str:
    """Look at the first in line as of now: "skipped" (ended; look at the next), "held"
    (it and all behind it keep waiting) or "sent"."""
    if newer := _superseded_by(run):
        _skip(
            run,
            status=RunStatus.SUPERSEDED,
            error=(
                f"Superseded: {run.service} {newer.version} succeeded on {run.environment} "
                f"(run #{newer.pk}) while it waited, so {run.version} was not deployed over it."
            ),
            verb="run.superseded",
            details={"superseded_by": newer.pk, "newer_version": newer.version},
        )
        return "skipped"
    block = launch_block(service=run.service, environment=run.environment)
    if block and not (block.overridable and run.emergency):
        _hold(run, f"Held: {block.reason}")
        return "held"
    if why := _rules_broken(run):
        _skip(
            run,
            status=RunStatus.FAILED,
            error=f"Not started: {why}",
            verb="run.finished",
            details={"not_started": why},
        )
        return "skipped"
    return "sent" if _send(run) else "held"


def _awaits_verification(service_id: int, environment_id: int) -> bool:
    """Whether the last run to hold the lock was a deploy that succeeded and asked for
    its verification, or a verification that failed where a failure rolls back by
    itself, its follow-up not launched yet: it goes before the line (for a while: a
    follow-up that never comes is the reaper's to launch)."""
    last = (
        Run.objects.filter(service_id=service_id, environment_id=environment_id, check_mode=False)
        .exclude(status__in=[RunStatus.WAITING, RunStatus.SUPERSEDED])
        .select_related("environment")
        .order_by("-id")
        .first()
    )
    if last is None or last.follow_up_done or not last.finished_at:
        return False
    if timezone.now() - last.finished_at >= VERIFICATION_FIRST:
        return False
    verifies = last.status == RunStatus.SUCCESSFUL and last.auto_verify
    rolls_back = (
        last.action_kind == ActionKind.VERIFY
        and last.status in (RunStatus.FAILED, RunStatus.TIMED_OUT)
        and last.environment.auto_rollback
    )
    return verifies or rolls_back


def queue_advance(*, service_id: int, environment_id: int) -> Run | None:
    """If the deploy lock of the service on the environment is free, start the first
    run in line that may start (see the module); returns it, or None."""
    for _ in range(ADVANCE_MAX_STEPS):
        if lock_holder(service_id, environment_id) is not None:
            return None
        if _awaits_verification(service_id, environment_id):
            return None
        run = (
            waiting_line(service_id, environment_id)
            .select_related(
                "service", "environment", "action", "requested_by", "api_token", "rollback_of"
            )
            .first()
        )
        if run is None:
            return None
        outcome = _step(run)
        if outcome == "sent":
            return run
        if outcome == "held":
            return None
    return None


def queues_advance() -> list[Run]:
    """Advance every deploy queue whose lock is free (the reaper's pass)."""
    pairs = (
        Run.objects.filter(status=RunStatus.WAITING)
        .values("service_id", "environment_id")
        .annotate(first=Min("id"))
        .order_by("first")
    )
    started = []
    for pair in pairs:
        try:
            run = queue_advance(
                service_id=pair["service_id"], environment_id=pair["environment_id"]
            )
        except Exception:
            log.exception("The deploy queue of %s could not advance", pair)
            continue
        if run is not None:
            started.append(run)
    return started


def run_ended_queue_advance(sender, *, run: Run, **kwargs) -> None:
    """Receiver of `run_ended`: the lock the run held is free; the next in line may go
    (after the verification the run asked for: its follow-up advances the line then)."""
    if run.check_mode:
        return
    queue_advance(service_id=run.service_id, environment_id=run.environment_id)
