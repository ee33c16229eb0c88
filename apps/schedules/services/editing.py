"""Saving schedules (every field checked, a message per field), pausing, resuming and
deleting them; each change audited in the transaction that makes it."""

import datetime
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.accounts.permissions import refusal_reason
from apps.audit.constants import Outcome as AuditOutcome
from apps.audit.services import audit_record
from apps.catalog.constants import ParameterInput
from apps.catalog.models import Action, Service
from apps.catalog.parameters import (
    ParameterError,
    parameters_clean,
    parameters_masked,
    secret_names,
)
from apps.environments.models import Environment
from apps.schedules import timing
from apps.schedules.constants import (
    EXPRESSION_MAX_CHARS,
    NAME_MAX_CHARS,
    Recurrence,
    WhenBusy,
)
from apps.schedules.models import Schedule
from portal.crypto import (
    DecryptionError,
    decrypt_json,
    encrypt_json,
    token_is_current,
    token_rotate,
)


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
