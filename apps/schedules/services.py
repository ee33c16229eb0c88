"""Schedules: saving them (every field checked, a message per field), pausing, resuming,
deleting, and firing them through the one launch path, as the person who scheduled them.
Each change and each firing is audited in the transaction that makes it."""

import datetime
import itertools
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.accounts.permissions import refusal_reason
from apps.audit.constants import Outcome as AuditOutcome
from apps.audit.constants import Via
from apps.audit.services import audit_record
from apps.catalog.constants import ParameterInput
from apps.catalog.models import Action, Service
from apps.catalog.parameters import (
    ParameterError,
    parameters_clean,
    parameters_masked,
    secret_names,
)
from apps.environments.constants import WhenLocked
from apps.environments.models import Environment
from apps.runs.constants import ACTIVE_STATUSES, RunStatus
from apps.runs.services import LaunchRefused, LaunchRequest, run_launch
from apps.schedules import timing
from apps.schedules.constants import (
    EXPRESSION_MAX_CHARS,
    NAME_MAX_CHARS,
    Outcome,
    Recurrence,
    WhenBusy,
)
from apps.schedules.models import Firing, Schedule
from portal.crypto import (
    DecryptionError,
    decrypt_json,
    encrypt_json,
    token_is_current,
    token_rotate,
)

log = logging.getLogger(__name__)

# Missed firings are counted up to this many (a minutely schedule down for a week).
MISSED_COUNTED_MAX = 10_000
# The run of a previous firing still goes while it waits, is queued or runs.
GOING = frozenset({*ACTIVE_STATUSES, RunStatus.WAITING})


class ScheduleInvalid(Exception):
    """A schedule that cannot be saved: messages per field of the schedule (`errors`)
    and per field of the action's form (`parameter_errors`)."""

    def __init__(self, errors: dict[str, list[str]], parameter_errors: dict[str, list[str]]):
        self.errors = errors
        self.parameter_errors = parameter_errors
        messages = {**errors, **{f"parameters.{k}": v for k, v in parameter_errors.items()}}
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in messages.items()))


@dataclass(frozen=True)
class ScheduleInput:
    """What a schedule is saved with, from its page or the API. `parameters` are the
    action's form as posted (ParameterInput.FORM) or as typed JSON values."""

    name: str
    service: Service | None
    action: Action | None
    environment: Environment | None
    kind: str
    expression: str
    time_zone: str
    when_busy: str = WhenBusy.SKIP
    parameters: Any = None
    given_as: str = ParameterInput.JSON


def _anchor(schedule: Schedule) -> datetime.datetime:
    return schedule.created_at


def schedule_next_due(schedule: Schedule, *, after: datetime.datetime) -> datetime.datetime | None:
    """When `schedule` fires next, strictly after `after` (None: never again)."""
    return timing.firing_next(
        kind=schedule.kind,
        expression=schedule.expression,
        zone=schedule.time_zone,
        after=after,
        anchor=_anchor(schedule),
    )


def _target_errors(data: ScheduleInput, *, user) -> dict[str, list[str]]:
    """Whether `user` may schedule the action there: as if they ran it now."""
    service, action, environment = data.service, data.action, data.environment
    errors: dict[str, list[str]] = {}
    if service is None:
        errors["service"] = ["Choose a service."]
    if action is None or (service is not None and action.service_id != service.pk):
        errors["action"] = ["Choose an action of the service."]
    if environment is None:
        errors["environment"] = ["Choose an environment."]
    if errors:
        return errors
    if why := refusal_reason(user, action=action, environment=environment):
        return {"environment": [why]}
    if environment.require_mfa:
        # Each launch there needs a fresh code of the authenticator app: the clock has none.
        return {
            "environment": [
                f"{environment.name} requires two-factor authentication at each launch: "
                "its runs cannot be scheduled."
            ]
        }
    return {}


def _recurrence_errors(data: ScheduleInput) -> tuple[dict[str, list[str]], str]:
    errors: dict[str, list[str]] = {}
    expression = (data.expression or "").strip()
    try:
        timing.time_zone(data.time_zone or "")
    except timing.RecurrenceError as exc:
        errors["time_zone"] = [str(exc)]
    if data.kind not in Recurrence.values:
        errors["kind"] = ["Choose cron or rrule."]
        return errors, expression
    if len(expression) > EXPRESSION_MAX_CHARS:
        errors["expression"] = [f"At most {EXPRESSION_MAX_CHARS} characters."]
        return errors, expression
    try:
        expression = timing.recurrence_check(kind=data.kind, expression=expression, zone="UTC")
    except timing.RecurrenceError as exc:
        errors["expression"] = [str(exc)]
    return errors, expression


def _clean(data: ScheduleInput, *, user, stored_secrets: dict) -> dict:
    """The schedule's fields, every one checked; ScheduleInvalid with all that is wrong."""
    errors: dict[str, list[str]] = {}
    name = (data.name or "").strip()
    if not name:
        errors["name"] = ["Give the schedule a name."]
    elif len(name) > NAME_MAX_CHARS:
        errors["name"] = [f"At most {NAME_MAX_CHARS} characters."]
    if data.when_busy not in WhenBusy.values:
        errors["when_busy"] = ["Choose skip or queue."]
    recurrence_errors, expression = _recurrence_errors(data)
    errors.update(recurrence_errors)
    errors.update(_target_errors(data, user=user))
    parameter_errors: dict[str, list[str]] = {}
    clean: dict = {}
    if data.action is not None and "action" not in errors:
        form = data.action.form
        given = _with_stored_secrets(data.parameters, form=form, stored=stored_secrets)
        try:
            clean = parameters_clean(form, given, given_as=data.given_as)
        except ParameterError as exc:
            parameter_errors = exc.errors
    if errors or parameter_errors:
        raise ScheduleInvalid(errors, parameter_errors)
    secrets = {
        k: clean[k] for k in secret_names(data.action.form) if clean.get(k) not in (None, "")
    }
    return {
        "name": name,
        "service": data.service,
        "action": data.action,
        "environment": data.environment,
        "kind": data.kind,
        "expression": expression,
        "time_zone": data.time_zone,
        "when_busy": data.when_busy,
        "parameters": parameters_masked(data.action.form, clean),
        "secret_parameters": encrypt_json(secrets) if secrets else "",
    }


def _with_stored_secrets(given, *, form, stored: dict):
    """A secret left blank when a schedule is changed keeps its stored value."""
    if not stored or given is None or not hasattr(given, "get"):
        return given
    given = given.copy()
    for name in secret_names(form):
        if name in stored and not given.get(name):
            given[name] = stored[name]
    return given


def _secrets(schedule: Schedule) -> dict:
    return decrypt_json(schedule.secret_parameters) if schedule.secret_parameters else {}


def _details(schedule: Schedule) -> dict:
    return {
        "name": schedule.name,
        "action": schedule.action.slug,
        "kind": schedule.kind,
        "expression": schedule.expression,
        "time_zone": schedule.time_zone,
        "when_busy": schedule.when_busy,
        "parameters": schedule.parameters,
        "runs_as": schedule.owner_name,
        "next_due_at": schedule.next_due_at.isoformat() if schedule.next_due_at else None,
    }


def _audit(schedule: Schedule, verb: str, *, actor, via: str, request=None, **details) -> None:
    audit_record(
        actor=actor,
        via=via,
        verb=verb,
        obj=schedule,
        service=schedule.service.slug,
        environment=schedule.environment.slug,
        details={**_details(schedule), **details},
        outcome=AuditOutcome.REFUSED if verb == "schedule.refused" else AuditOutcome.SUCCESS,
        request=request,
    )


def schedule_create(*, data: ScheduleInput, acting_user, via: str, request=None) -> Schedule:
    """A new schedule, run as `acting_user`, who must be allowed to run its action on its
    environment now; it fires first at its next due time after now. Raises ScheduleInvalid."""
    fields = _clean(data, user=acting_user, stored_secrets={})
    now = timezone.now()
    with transaction.atomic():
        schedule = Schedule(
            **fields,
            owner=acting_user,
            owner_name=acting_user.get_username(),
            created_at=now,
            updated_at=now,
        )
        schedule.next_due_at = schedule_next_due(schedule, after=now)
        schedule.save()
        _audit(schedule, "schedule.created", actor=acting_user, via=via, request=request)
    return schedule


def schedule_change(
    *, schedule: Schedule, data: ScheduleInput, acting_user, via: str, request=None
) -> Schedule:
    """Change a schedule: whoever changes it vouches for it, so from now on it runs as
    them (they must be allowed to run its action there). Its next firing is counted
    from now. Raises ScheduleInvalid."""
    try:
        stored = _secrets(schedule)
    except DecryptionError:
        stored = {}
    fields = _clean(data, user=acting_user, stored_secrets=stored)
    before = _details(schedule)
    now = timezone.now()
    with transaction.atomic():
        for key, value in fields.items():
            setattr(schedule, key, value)
        schedule.owner = acting_user
        schedule.owner_name = acting_user.get_username()
        schedule.updated_at = now
        schedule.next_due_at = None if schedule.paused else schedule_next_due(schedule, after=now)
        schedule.save()
        after = _details(schedule)
        changed = sorted(k for k in after if after[k] != before[k] and k != "next_due_at")
        _audit(
            schedule,
            "schedule.changed",
            actor=acting_user,
            via=via,
            request=request,
            changed=changed,
        )
    return schedule


def schedule_pause(*, schedule: Schedule, acting_user, via: str, request=None) -> Schedule:
    """Stop it firing until it is resumed."""
    with transaction.atomic():
        schedule.paused = True
        schedule.next_due_at = None
        schedule.updated_at = timezone.now()
        schedule.save(update_fields=["paused", "next_due_at", "updated_at"])
        _audit(schedule, "schedule.paused", actor=acting_user, via=via, request=request)
    return schedule


def schedule_resume(*, schedule: Schedule, acting_user, via: str, request=None) -> Schedule:
    """Let it fire again, from its next due time after now: what it would have fired while
    paused is not caught up."""
    now = timezone.now()
    with transaction.atomic():
        schedule.paused = False
        schedule.next_due_at = schedule_next_due(schedule, after=now)
        schedule.updated_at = now
        schedule.save(update_fields=["paused", "next_due_at", "updated_at"])
        _audit(schedule, "schedule.resumed", actor=acting_user, via=via, request=request)
    return schedule


def schedule_delete(*, schedule: Schedule, acting_user, via: str, request=None) -> None:
    """Delete it and its firings (the runs it launched stay)."""
    with transaction.atomic():
        _audit(schedule, "schedule.deleted", actor=acting_user, via=via, request=request)
        schedule.delete()


def schedules_rotate_key() -> int:
    """Re-encrypt the secret parameters of schedules with the current key."""
    rotated = 0
    with transaction.atomic():
        for schedule in Schedule.objects.select_for_update().exclude(secret_parameters=""):
            if token_is_current(schedule.secret_parameters):
                continue
            try:
                schedule.secret_parameters = token_rotate(schedule.secret_parameters)
            except DecryptionError as exc:
                raise DecryptionError(f"Schedule #{schedule.pk}: {exc}") from exc
            schedule.save(update_fields=["secret_parameters"])
            rotated += 1
    return rotated


# --- firing --------------------------------------------------------------------------
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
