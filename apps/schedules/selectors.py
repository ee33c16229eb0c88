"""Who sees and manages schedules, and what the pages show of them."""

import datetime

from django.utils import timezone

from apps.accounts.constants import Role
from apps.accounts.permissions import can_view, run_filter
from apps.schedules import timing
from apps.schedules.constants import Outcome
from apps.schedules.models import Firing, Schedule

NEXT_SHOWN = 5
RECENT_SHOWN = 20


def schedule_list(*, user):
    """The schedules `user` may see: those of a service and environment whose runs they see."""
    return (
        Schedule.objects.filter(run_filter(user))
        .select_related("service", "action", "environment")
        .order_by("name", "id")
    )


def can_view_schedule(user, schedule: Schedule) -> bool:
    return can_view(user, service=schedule.service, environment=schedule.environment)


def manage_refusal_reason(user, schedule: Schedule) -> str | None:
    """Why `user` may not change, pause, resume or delete `schedule`, or None: its owner
    may, and Ops (to stop a schedule of someone else); nobody else."""
    if not (user is not None and user.is_authenticated and user.is_active):
        return "Sign in to manage schedules."
    if not can_view_schedule(user, schedule):
        return "You may not see this schedule."
    if user.is_superuser or user.role == Role.OPS or schedule.owner_id == user.pk:
        return None
    return f"Only {schedule.owner_name}, who scheduled it, or Ops can change this schedule."


def schedule_next_firings(
    schedule: Schedule, *, now: datetime.datetime | None = None, count: int = NEXT_SHOWN
) -> list[datetime.datetime]:
    """Its next `count` firings after `now`, in the schedule's time zone (none while paused)."""
    if schedule.paused:
        return []
    now = now or timezone.now()
    zone = timing.time_zone(schedule.time_zone)
    after = now
    if schedule.next_due_at and schedule.next_due_at <= now:
        after = schedule.next_due_at - datetime.timedelta(microseconds=1)
    return [
        instant.astimezone(zone)
        for instant in timing.firings_after(
            kind=schedule.kind,
            expression=schedule.expression,
            zone=schedule.time_zone,
            after=after,
            anchor=schedule.created_at,
            count=count,
        )
    ]


def schedule_recent_firings(schedule: Schedule, *, count: int = RECENT_SHOWN):
    return Firing.objects.filter(schedule=schedule).select_related("run")[:count]


def schedule_last_refusal(schedule: Schedule) -> Firing | None:
    """Its last firing, when it was refused: why it did not run (shown at the top)."""
    last = Firing.objects.filter(schedule=schedule).first()
    return last if last is not None and last.outcome == Outcome.REFUSED else None
