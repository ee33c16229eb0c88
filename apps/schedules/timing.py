"""When a schedule fires: pure functions of its recurrence, its time zone and a moment.

A recurrence (a cron expression, read by croniter; or an RRULE, read by python-dateutil)
is evaluated in the schedule's local wall time, as a person reads "every day at 02:30 in
Europe/Berlin", and each wall time is then placed on the UTC time line with zoneinfo:

- a wall time that does not exist (skipped when clocks go forward) fires once, at the
  first instant after the gap (02:30 on the spring-forward day fires at 03:00);
- a wall time that happens twice (when clocks go back) fires once, at its first
  occurrence; wall times a recurrence names more than once (several in a gap) fire once.

So a daylight-saving change neither skips nor doubles a firing. Nothing here reads the
clock: the moment to count from is always passed in.
"""

import datetime
import itertools
import re
import zoneinfo
from collections.abc import Iterator

from croniter import CroniterError, croniter
from dateutil.rrule import SECONDLY, rrule, rrulebase, rrulestr

from apps.schedules.constants import Recurrence

UTC = datetime.UTC
# How far an iteration looks before it gives up on finding a firing (a cron expression
# such as "0 0 31 2 *" never matches; a bounded RRULE ends).
HORIZON = datetime.timedelta(days=366 * 5)
FIELDS = re.compile(r"\s+")
# The parts of an RRULE that choose days (those that can name days that never come).
DATE_FILTERS = frozenset(
    {"BYMONTH", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYDAY", "BYEASTER", "WKST"}
)


class RecurrenceError(ValueError):
    """A recurrence, or a time zone, that cannot be used: the message says why."""


def time_zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise RecurrenceError(
            f"{name!r} is not a time zone name (IANA), e.g. UTC or Europe/Berlin."
        ) from exc


def _cron_check(expression: str) -> str:
    expression = FIELDS.sub(" ", expression.strip())
    if not expression:
        raise RecurrenceError("Give a cron expression, e.g. 30 2 * * * (every day at 02:30).")
    if not expression.startswith("@") and len(expression.split(" ")) != 5:
        raise RecurrenceError(
            "A cron expression has five fields: minute, hour, day of month, month, day of "
            "week (e.g. 30 2 * * 1-5)."
        )
    if expression in ("@reboot",) or not croniter.is_valid(expression):
        raise RecurrenceError(f"{expression!r} is not a valid cron expression.")
    try:
        croniter(expression, datetime.datetime(2000, 1, 1)).get_next(datetime.datetime)
    except CroniterError as exc:
        raise RecurrenceError(
            f"{expression!r} names no time that exists (e.g. 30 February)."
        ) from exc
    return expression


def _rrule(expression: str, anchor: datetime.datetime) -> rrulebase:
    """The RRULE read by dateutil, in naive local wall time, starting at `anchor` unless
    it gives its own DTSTART (a floating local time: the zone is the schedule's)."""
    text = expression.strip()
    if not text:
        raise RecurrenceError("Give an RRULE, e.g. FREQ=DAILY;BYHOUR=2;BYMINUTE=30.")
    if "\n" not in text and text.upper().startswith("RRULE:"):
        text = text[len("RRULE:") :]
    try:
        rule = rrulestr(text, dtstart=anchor, forceset=False, ignoretz=False)
    except (ValueError, TypeError, OverflowError) as exc:
        raise RecurrenceError(f"Not a valid RRULE: {exc}.") from exc
    if not isinstance(rule, rrule):
        raise RecurrenceError("Give one RRULE (with an optional DTSTART line), not a set.")
    if rule._dtstart.tzinfo is not None:
        raise RecurrenceError(
            "Give DTSTART as a local time without TZID or Z (e.g. DTSTART:20260101T023000): "
            "the schedule's time zone applies."
        )
    if rule._until is not None and rule._until.tzinfo is not None:
        raise RecurrenceError(
            "Give UNTIL as a local time without Z: the schedule's time zone applies."
        )
    if rule._freq == SECONDLY:
        raise RecurrenceError("A schedule fires at most once a minute: FREQ=SECONDLY is refused.")
    if rule._interval < 1:
        raise RecurrenceError("INTERVAL must be 1 or more.")
    parts = _rrule_parts(text)
    if "BYSETPOS" in parts:
        raise RecurrenceError("BYSETPOS is not supported here: say the days with BYDAY.")
    if _never(parts):
        raise RecurrenceError("This RRULE names no day that exists (e.g. 30 February).")
    return rule


def _rrule_parts(text: str) -> dict[str, str]:
    line = next(
        (x for x in text.splitlines() if not x.upper().startswith(("DTSTART", "EXDATE"))), ""
    )
    if line.upper().startswith("RRULE:"):
        line = line[len("RRULE:") :]
    parts = (part.partition("=") for part in line.split(";") if part)
    return {key.strip().upper(): value for key, _, value in parts}


def _never(parts: dict[str, str]) -> bool:
    """Whether the days the rule's filters allow never come. dateutil would look for
    them until the year 9999, which takes minutes at a daily or finer frequency; a yearly
    rule with the same filters says it in about a second."""
    if not DATE_FILTERS & parts.keys():
        return False
    probe = ";".join(["FREQ=YEARLY", *(f"{k}={v}" for k, v in parts.items() if k in DATE_FILTERS)])
    try:
        return (
            rrulestr(probe, dtstart=datetime.datetime(2000, 1, 1)).after(
                datetime.datetime(2000, 1, 1), inc=True
            )
            is None
        )
    except (ValueError, TypeError, OverflowError):
        return False  # the rule itself parsed: its own iteration decides


def recurrence_check(*, kind: str, expression: str, zone: str) -> str:
    """The expression, normalized, if it can be used with that time zone; else
    RecurrenceError saying why."""
    time_zone(zone)
    if kind == Recurrence.CRON:
        return _cron_check(expression)
    if kind == Recurrence.RRULE:
        _rrule(expression, datetime.datetime(2000, 1, 1))
        return expression.strip()
    raise RecurrenceError(f"Unknown kind of recurrence {kind!r}: cron or rrule.")


def _wall_times(
    kind: str, expression: str, start: datetime.datetime, anchor: datetime.datetime
) -> Iterator[datetime.datetime]:
    """Naive local wall times the recurrence names, after `start` (naive, local)."""
    limit = start + HORIZON
    if kind == Recurrence.CRON:
        cron = croniter(_cron_check(expression), start)
        while (wall := cron.get_next(datetime.datetime)) <= limit:
            yield wall
        return
    rule = _rrule(expression, anchor)
    wall = start
    while (wall := rule.after(wall, inc=False)) is not None and wall <= limit:
        yield wall


def _instant(wall: datetime.datetime, zone: zoneinfo.ZoneInfo) -> datetime.datetime:
    """The UTC instant a local wall time fires at: its first occurrence when it happens
    twice; the end of the gap when it does not exist."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # In a gap. fold=0 read it with the offset before the change, which lands after the
    # gap; fold=1 with the offset after, which lands before it. The change is between.
    lo = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    hi = first
    offset = hi.astimezone(zone).utcoffset()
    lo_s, hi_s = int(lo.timestamp()), int(hi.timestamp())
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if datetime.datetime.fromtimestamp(mid, zone).utcoffset() == offset:
            hi_s = mid
        else:
            lo_s = mid
    return datetime.datetime.fromtimestamp(hi_s, UTC)


def firings(
    *,
    kind: str,
    expression: str,
    zone: str,
    after: datetime.datetime,
    anchor: datetime.datetime | None = None,
) -> Iterator[datetime.datetime]:
    """The firings strictly after the aware moment `after`, as UTC instants in order,
    for as long as the recurrence goes (within HORIZON). `anchor` (aware) is where an
    RRULE without DTSTART starts counting: its first day, and its time of day when it
    names none."""
    tz = time_zone(zone)
    local = after.astimezone(tz).replace(tzinfo=None)
    # An RRULE without DTSTART counts from 00:00 of its anchor's day: FREQ=DAILY fires at
    # midnight, FREQ=HOURLY;INTERVAL=6 at 00:00, 06:00, ... unless BYHOUR etc. say.
    anchor_wall = (
        (anchor or after)
        .astimezone(tz)
        .replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
    )
    # One hour back: after the clocks went back, the wall times of the repeated hour come
    # again; those already past on the time line are passed over below.
    start = local - datetime.timedelta(hours=1)
    last = None
    try:
        for wall in _wall_times(kind, expression, start, anchor_wall):
            instant = _instant(wall, tz)
            if instant <= after or (last is not None and instant <= last):
                continue
            last = instant
            yield instant
    except CroniterError:
        return  # no date matches the expression (e.g. 30 February)


def firings_after(*, count: int, **kwargs) -> list[datetime.datetime]:
    """The next `count` firings (fewer when the recurrence ends); see `firings`."""
    return list(itertools.islice(firings(**kwargs), count))


def firing_next(**kwargs) -> datetime.datetime | None:
    """The next firing strictly after `after`, or None when there is none; see `firings`."""
    return next(firings(**kwargs), None)
