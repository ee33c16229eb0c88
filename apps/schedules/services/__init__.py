"""Schedules: saving them (editing) and firing them (firing)."""

from apps.schedules.services.editing import (
    ScheduleInput,
    ScheduleInvalid,
    schedule_change,
    schedule_create,
    schedule_delete,
    schedule_next_due,
    schedule_pause,
    schedule_resume,
    schedules_rotate_key,
)
from apps.schedules.services.firing import MISSED_COUNTED_MAX, schedules_fire_due

__all__ = [
    "MISSED_COUNTED_MAX",
    "ScheduleInput",
    "ScheduleInvalid",
    "schedule_change",
    "schedule_create",
    "schedule_delete",
    "schedule_next_due",
    "schedule_pause",
    "schedule_resume",
    "schedules_fire_due",
    "schedules_rotate_key",
]
