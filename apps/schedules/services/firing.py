"""Firing schedules through the one launch path, as the person who scheduled them:
fired, skipped, missed or refused, each recorded as a Firing and audited."""

import datetime
import itertools
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.audit.constants import Via
from apps.catalog.constants import ParameterInput
from apps.catalog.parameters import ParameterError
from apps.environments.constants import WhenLocked
from apps.runs.constants import ACTIVE_STATUSES, RunStatus
from apps.runs.services import LaunchRefused, LaunchRequest, run_launch
from apps.schedules import timing
from apps.schedules.constants import Outcome, WhenBusy
from apps.schedules.models import Firing, Schedule
from apps.schedules.services.editing import _anchor, _audit, _secrets, schedule_next_due
from portal.crypto import DecryptionError

log = logging.getLogger(__name__)

# Missed firings are counted up to this many (a minutely schedule down for a week).
MISSED_COUNTED_MAX = 10_000
# The run of a previous firing still goes while it waits, is queued or runs.
GOING = frozenset({*ACTIVE_STATUSES, RunStatus.WAITING})


def schedules_fire_due(*, now: datetime.datetime | None = None) -> list[Firing]:
    """Fire every schedule due at `now` (default: the clock), each once.

    Each schedule is taken with SELECT ... FOR UPDATE SKIP LOCKED, fired, and moved on
    to its next due time in one transaction, so two passes at once (two beat processes,
    a pass slower than the period) never fire one due time twice. A due time longer than
    SCHEDULE_GRACE_SECONDS ago (the portal was down) is recorded as missed, not caught
    up; the next firing is counted from now."""
    now = now or timezone.now()
    done: list[Firing] = []
    while True:
        with transaction.atomic():
            schedule = (
                Schedule.objects.select_for_update(skip_locked=True)
                .filter(paused=False, next_due_at__lte=now)
                .order_by("next_due_at", "id")
                .first()
            )
            if schedule is None:
                return done
            try:
                with transaction.atomic():
                    done += _fire(schedule, now=now)
            except Exception as exc:
                # One broken schedule must not stop the others (nor be picked again and
                # again in this pass): its firing is refused with the error, and it moves on.
                log.exception("Schedule %s could not be fired.", schedule.pk)
                done.append(_broken(schedule, now=now, exc=exc))


def _broken(schedule: Schedule, *, now, exc: Exception) -> Firing:
    due = schedule.next_due_at
    try:
        schedule.next_due_at = schedule_next_due(schedule, after=now)
    except Exception:
        log.exception("Schedule %s has no next firing it can compute.", schedule.pk)
        schedule.next_due_at = None
    schedule.save(update_fields=["next_due_at"])
    reason = f"It could not be fired ({type(exc).__name__}: {exc}); the portal's log has more."
    return _record(schedule, due=due, now=now, outcome=Outcome.REFUSED, reason=reason)


def _dues(schedule: Schedule, *, now: datetime.datetime) -> list[datetime.datetime]:
    """Its due times from the one it waits for up to `now`, in order (at most
    MISSED_COUNTED_MAX + 1)."""
    later = timing.firings(
        kind=schedule.kind,
        expression=schedule.expression,
        zone=schedule.time_zone,
        after=schedule.next_due_at,
        anchor=_anchor(schedule),
    )
    due = itertools.takewhile(lambda at: at <= now, later)
    return [schedule.next_due_at, *itertools.islice(due, MISSED_COUNTED_MAX)]


def _local(schedule: Schedule, at: datetime.datetime) -> str:
    return at.astimezone(timing.time_zone(schedule.time_zone)).strftime("%Y-%m-%d %H:%M %Z")


def _fire(schedule: Schedule, *, now: datetime.datetime) -> list[Firing]:
    dues = _dues(schedule, now=now)
    grace = datetime.timedelta(seconds=settings.SCHEDULE_GRACE_SECONDS)
    late = now - dues[-1] > grace
    missed, due = (dues, None) if late else (dues[:-1], dues[-1])
    firings = []
    if missed:
        firings.append(_missed(schedule, missed, now=now))
    if due is not None:
        firings.append(_launch(schedule, due=due, now=now))
    schedule.next_due_at = schedule_next_due(schedule, after=now)
    schedule.save(update_fields=["next_due_at"])
    return firings


def _missed(schedule: Schedule, missed: list[datetime.datetime], *, now) -> Firing:
    count = f"{len(missed)}{'+' if len(missed) > MISSED_COUNTED_MAX else ''}"
    span = _local(schedule, missed[0])
    if len(missed) > 1:
        span = f"from {span} to {_local(schedule, missed[-1])}"
    reason = (
        f"{count} firing{'s' if len(missed) > 1 else ''} ({span}) missed: schedules were not "
        "fired then (the portal was down). Missed firings are not caught up."
    )
    return _record(schedule, due=missed[0], now=now, outcome=Outcome.MISSED, reason=reason)


def _record(schedule, *, due, now, outcome: str, reason: str = "", run=None) -> Firing:
    firing = Firing.objects.create(
        schedule=schedule, due_at=due, fired_at=now, outcome=outcome, reason=reason, run=run
    )
    extra = {"due_at": due.isoformat(), "firing": firing.pk}
    if reason:
        extra["reason"] = reason
    if run is not None:
        extra["run"] = run.pk
    _audit(schedule, f"schedule.{outcome}", actor=None, via=Via.SYSTEM, **extra)
    return firing


def _going_run(schedule: Schedule):
    firing = (
        Firing.objects.filter(schedule=schedule, run__status__in=GOING)
        .select_related("run")
        .first()
    )
    return firing.run if firing else None


def _owner_refusal(schedule: Schedule):
    owner = schedule.owner
    if owner is None:
        return None, (
            f"{schedule.owner_name}, who scheduled it, no longer has an account: someone "
            "allowed to run it must take the schedule over (change it) or delete it."
        )
    # Read afresh: their rights are those of the moment it fires.
    owner = type(owner).objects.get(pk=owner.pk)
    if not owner.is_active:
        return owner, (
            f"The account of {owner.get_username()}, as whom it runs, is deactivated: someone "
            "allowed to run it must take the schedule over (change it) or delete it."
        )
    return owner, None


def _launch(schedule: Schedule, *, due, now) -> Firing:
    """One firing: launched as its owner through the one launch path, or why not."""
    owner, why = _owner_refusal(schedule)
    if why:
        return _record(schedule, due=due, now=now, outcome=Outcome.REFUSED, reason=why)
    going = _going_run(schedule)
    if going is not None and schedule.when_busy == WhenBusy.SKIP:
        why = (
            f"Run #{going.pk} of its previous firing is still {going.get_status_display().lower()}."
        )
        return _record(schedule, due=due, now=now, outcome=Outcome.SKIPPED, reason=why)
    try:
        parameters = {**schedule.parameters, **_secrets(schedule)}
    except DecryptionError:
        why = "Its secret parameters cannot be decrypted with the portal's keys: enter them again."
        return _record(schedule, due=due, now=now, outcome=Outcome.REFUSED, reason=why)
    request = LaunchRequest(
        user=owner,
        service=schedule.service,
        action=schedule.action,
        environment=schedule.environment,
        parameters=parameters,
        given_as=ParameterInput.JSON,
        via=Via.SYSTEM,
        when_locked=WhenLocked.QUEUE if schedule.when_busy == WhenBusy.QUEUE else WhenLocked.REFUSE,
    )
    try:
        run = run_launch(request)
    except ParameterError as exc:
        why = f"Its parameters no longer fit the action's form: {exc}"
        return _record(schedule, due=due, now=now, outcome=Outcome.REFUSED, reason=why)
    except LaunchRefused as exc:
        return _record(schedule, due=due, now=now, outcome=Outcome.REFUSED, reason=exc.reason)
    return _record(schedule, due=due, now=now, outcome=Outcome.FIRED, run=run)
