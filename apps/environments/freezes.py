"""Freeze windows: times when runs on an environment wait, once or every week."""

import datetime
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from apps.environments.constants import REASON_MAX_CHARS, WEEKDAY_NAMES, FreezeKind


def validate_time_zone(value) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(
            f"{value!r} is not a time zone name, e.g. UTC or Europe/Berlin."
        ) from exc


def validate_weekdays(value) -> None:
    if not isinstance(value, list) or not all(
        isinstance(day, int) and not isinstance(day, bool) and 0 <= day <= 6 for day in value
    ):
        raise ValidationError("Weekdays are a list of numbers, 0 (Monday) to 6 (Sunday).")


def default_time_zone() -> str:
    return settings.TIME_ZONE


class FreezeWindow(models.Model):
    """A time when runs on an environment wait: once (from a date to a date) or every
    week (on some days, from a time to a time in a named time zone; an end at or
    before the start runs past midnight into the next day). Only an emergency
    override, by someone with the right, passes it."""

    environment = models.ForeignKey(
        "environments.Environment", on_delete=models.CASCADE, related_name="freeze_windows"
    )
    name = models.CharField(max_length=100, help_text='Shown to users, e.g. "Weekend freeze".')
    reason = models.CharField(
        max_length=REASON_MAX_CHARS,
        blank=True,
        help_text="Why runs wait then, shown with the refusal.",
    )
    kind = models.CharField(max_length=8, choices=FreezeKind.choices, default=FreezeKind.WEEKLY)
    starts_at = models.DateTimeField(null=True, blank=True, help_text="One-off windows only.")
    ends_at = models.DateTimeField(null=True, blank=True, help_text="One-off windows only.")
    weekdays = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_weekdays],
        help_text="Weekly windows: the days on which it starts (0 is Monday).",
    )
    start_time = models.TimeField(null=True, blank=True, help_text="Weekly windows only.")
    end_time = models.TimeField(
        null=True,
        blank=True,
        help_text=(
            "Weekly windows only. At or before the start time, the window runs past midnight "
            "(00:00 to 00:00 is the whole day)."
        ),
    )
    time_zone = models.CharField(
        max_length=64,
        default=default_time_zone,
        validators=[validate_time_zone],
        help_text="Weekly windows: the time zone of the times, e.g. Europe/Berlin.",
    )
    active = models.BooleanField(default=True, help_text="Untick to stop enforcing it.")

    class Meta:
        ordering = ["environment", "name"]
        constraints = [
            # What clean() says field by field, kept by the database for every other path.
            models.CheckConstraint(
                condition=models.Q(
                    kind=FreezeKind.ONCE,
                    starts_at__isnull=False,
                    ends_at__isnull=False,
                    ends_at__gt=models.F("starts_at"),
                )
                | models.Q(
                    kind=FreezeKind.WEEKLY, start_time__isnull=False, end_time__isnull=False
                ),
                name="freeze_window_complete",
                violation_error_message="A one-off window needs its start and a later end; "
                "a weekly window its start and end times.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.environment})"

    def clean(self):
        errors: dict[str, str] = {}
        if self.kind == FreezeKind.ONCE:
            if self.starts_at is None:
                errors["starts_at"] = "A one-off window needs its start."
            if self.ends_at is None:
                errors["ends_at"] = "A one-off window needs its end."
            if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
                errors["ends_at"] = "The end must be after the start."
            if self.weekdays:
                errors["weekdays"] = "Only weekly windows have weekdays: clear them."
            if self.start_time is not None:
                errors["start_time"] = "Only weekly windows have a start time: clear it."
            if self.end_time is not None:
                errors["end_time"] = "Only weekly windows have an end time: clear it."
        elif self.kind == FreezeKind.WEEKLY:
            if not self.weekdays:
                errors["weekdays"] = "Choose at least one day."
            if self.start_time is None:
                errors["start_time"] = "A weekly window needs its start time."
            if self.end_time is None:
                errors["end_time"] = "A weekly window needs its end time."
            if self.starts_at is not None:
                errors["starts_at"] = "Only one-off windows have a start date: clear it."
            if self.ends_at is not None:
                errors["ends_at"] = "Only one-off windows have an end date: clear it."
        if errors:
            raise ValidationError(errors)

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        try:
            return zoneinfo.ZoneInfo(self.time_zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return zoneinfo.ZoneInfo("UTC")  # validated on save; never fail a launch over it

    def schedule(self) -> str:
        """The window in words: "every Saturday, Sunday, all day, Europe/Berlin time"."""
        if self.kind == FreezeKind.ONCE:
            if self.starts_at is None or self.ends_at is None:
                return "one-off, dates missing"
            fmt = "%Y-%m-%d %H:%M %Z"
            zone = timezone.get_current_timezone()
            return (
                f"from {self.starts_at.astimezone(zone).strftime(fmt)} to "
                f"{self.ends_at.astimezone(zone).strftime(fmt)}"
            )
        chosen = sorted(set(self.weekdays or []))
        days = (
            "day"
            if chosen == list(range(7))
            else ", ".join(WEEKDAY_NAMES.get(day, "?") for day in chosen)
        )
        start, end = self.start_time, self.end_time
        if start is None or end is None:
            hours = "times missing"
        elif start == end == datetime.time(0, 0):
            hours = "all day"
        else:
            hours = f"from {start:%H:%M} to {end:%H:%M}" + (" the next day" if end <= start else "")
        return f"every {days}, {hours}, {self.time_zone} time"

    def _weekly_span(self, day: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
        """The window that starts on `day` (local), as aware UTC datetimes."""
        zone = self.zone
        start = datetime.datetime.combine(day, self.start_time, tzinfo=zone)
        end_day = day if self.end_time > self.start_time else day + datetime.timedelta(days=1)
        end = datetime.datetime.combine(end_day, self.end_time, tzinfo=zone)
        return start.astimezone(datetime.UTC), end.astimezone(datetime.UTC)

    def in_force_until(self, at: datetime.datetime) -> datetime.datetime | None:
        """When the freeze in force at `at` ends (UTC), or None when it is not in force.
        Back-to-back weekly windows (Saturday and Sunday, all day) count as one."""
        if not self.active:
            return None
        if self.kind == FreezeKind.ONCE:
            if self.starts_at and self.ends_at and self.starts_at <= at < self.ends_at:
                return self.ends_at
            return None
        if not (self.weekdays and self.start_time and self.end_time):
            return None
        local_day = at.astimezone(self.zone).date()
        until = None
        for day in (local_day - datetime.timedelta(days=1), local_day):
            if day.weekday() in self.weekdays:
                start, end = self._weekly_span(day)
                if start <= at < end:
                    until = end
        if until is None:
            return None
        # Follow windows that start where this one ends (at most a week ahead).
        for _ in range(7):
            nxt = until.astimezone(self.zone).date()
            extended = None
            for day in (nxt - datetime.timedelta(days=1), nxt):
                if day.weekday() in self.weekdays:
                    start, end = self._weekly_span(day)
                    if start <= until < end:
                        extended = end
            if extended is None or extended <= until:
                break
            until = extended
        return until
