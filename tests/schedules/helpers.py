"""Schedules made through their service, as a person would, and fired at a fixed time."""

from datetime import timedelta

from apps.audit.constants import Via
from apps.schedules import services
from apps.schedules.models import Schedule

SECOND = timedelta(seconds=1)


def schedule_make(user, action, environment, *, expression="*/15 * * * *", **fields) -> Schedule:
    data = {
        "name": fields.pop("name", f"{action.label} every quarter"),
        "service": action.service,
        "action": action,
        "environment": environment,
        "kind": fields.pop("kind", "cron"),
        "expression": expression,
        "time_zone": fields.pop("time_zone", "Europe/Berlin"),
        "parameters": fields.pop("parameters", {}),
        **fields,
    }
    return services.schedule_create(
        data=services.ScheduleInput(**data), acting_user=user, via=Via.WEB
    )


def fire_when_due(schedule: Schedule, *, late: timedelta = SECOND) -> list:
    """Fire the schedules due `late` after `schedule`'s next due time."""
    schedule.refresh_from_db()
    return services.schedules_fire_due(now=schedule.next_due_at + late)
