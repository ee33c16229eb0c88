"""When schedules fire: pure functions, a fixed clock, across both daylight-saving
changes of Europe/Berlin in 2026 (forward on 29 March at 02:00, back on 25 October at
03:00) and of America/New_York (forward 8 March, back 1 November)."""

from datetime import UTC, datetime

import pytest

from apps.schedules.timing import RecurrenceError, firing_next, firings_after, recurrence_check

BERLIN = "Europe/Berlin"


def _utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _next(expression, after, *, kind="cron", zone=BERLIN, count=3, anchor=None):
    return firings_after(
        kind=kind, expression=expression, zone=zone, after=after, count=count, anchor=anchor
    )


@pytest.mark.parametrize(
    ("kind", "expression"),
    [("cron", "30 2 * * *"), ("rrule", "FREQ=DAILY;BYHOUR=2;BYMINUTE=30;BYSECOND=0")],
)
def test_a_daily_0230_firing_fires_once_on_the_spring_forward_day(kind, expression):
    # 02:30 does not exist on 29 March in Berlin: it fires at 03:00 CEST (01:00 UTC).
    assert _next(expression, _utc(2026, 3, 27, 12), kind=kind) == [
        _utc(2026, 3, 28, 1, 30),  # 02:30 CET
        _utc(2026, 3, 29, 1, 0),  # 03:00 CEST, the first instant after the gap
        _utc(2026, 3, 30, 0, 30),  # 02:30 CEST
    ]


@pytest.mark.parametrize(
    ("kind", "expression"),
    [("cron", "30 2 * * *"), ("rrule", "FREQ=DAILY;BYHOUR=2;BYMINUTE=30;BYSECOND=0")],
)
def test_a_daily_0230_firing_fires_once_on_the_fall_back_day(kind, expression):
    # 02:30 happens twice on 25 October: it fires at the first (CEST), not again (CET).
    assert _next(expression, _utc(2026, 10, 24, 12), kind=kind) == [
        _utc(2026, 10, 25, 0, 30),  # 02:30 CEST
        _utc(2026, 10, 26, 1, 30),  # 02:30 CET the next day
        _utc(2026, 10, 27, 1, 30),
    ]


def test_counting_from_between_the_two_0230s_does_not_fire_the_second():
    # The clock reads 02:40 the first time (CEST): the next 02:30 is the next day's.
    assert firing_next(
        kind="cron", expression="30 2 * * *", zone=BERLIN, after=_utc(2026, 10, 25, 0, 40)
    ) == _utc(2026, 10, 26, 1, 30)
    # 02:10 the second time (CET): the 02:30 coming is the one already fired, not again.
    assert firing_next(
        kind="cron", expression="30 2 * * *", zone=BERLIN, after=_utc(2026, 10, 25, 1, 10)
    ) == _utc(2026, 10, 26, 1, 30)


def test_every_15_minutes_through_the_gap_fires_once_for_it():
    # 02:00 to 02:45 do not exist: one firing at 03:00 stands for them all.
    found = _next("*/15 * * * *", _utc(2026, 3, 29, 0, 30), count=4)
    assert found == [
        _utc(2026, 3, 29, 0, 45),  # 01:45 CET
        _utc(2026, 3, 29, 1, 0),  # 03:00 CEST
        _utc(2026, 3, 29, 1, 15),  # 03:15 CEST
        _utc(2026, 3, 29, 1, 30),
    ]


def test_hourly_through_the_fall_back_reads_wall_time_once():
    found = _next("0 * * * *", _utc(2026, 10, 24, 23, 30), count=4)
    assert found == [
        _utc(2026, 10, 25, 0, 0),  # 02:00 CEST
        # 02:00 CET (01:00 UTC) is the same wall time again: not fired twice.
        _utc(2026, 10, 25, 2, 0),  # 03:00 CET
        _utc(2026, 10, 25, 3, 0),
        _utc(2026, 10, 25, 4, 0),
    ]
    assert len(set(found)) == len(found)


def test_new_york_weekday_morning_keeps_its_local_time_across_both_changes():
    zone = "America/New_York"
    spring = _next("0 9 * * 1-5", _utc(2026, 3, 6, 15), zone=zone, count=2)
    assert spring == [_utc(2026, 3, 9, 13), _utc(2026, 3, 10, 13)]  # EDT, UTC-4
    fall = _next("0 9 * * 1-5", _utc(2026, 10, 30, 14), zone=zone, count=2)
    assert fall == [_utc(2026, 11, 2, 14), _utc(2026, 11, 3, 14)]  # EST, UTC-5


def test_an_rrule_with_its_own_local_dtstart_and_count_ends():
    rule = "DTSTART:20260328T023000\nRRULE:FREQ=DAILY;COUNT=3"
    found = _next(rule, _utc(2026, 3, 1), kind="rrule", count=5)
    assert found == [_utc(2026, 3, 28, 1, 30), _utc(2026, 3, 29, 1, 0), _utc(2026, 3, 30, 0, 30)]


def test_an_rrule_without_dtstart_counts_from_its_anchor_day():
    found = _next(
        "FREQ=HOURLY;INTERVAL=6",
        _utc(2026, 1, 10, 7),
        kind="rrule",
        anchor=_utc(2026, 1, 9, 15, 17, 42),
        count=3,
    )
    # From 00:00 Berlin on the anchor's day, every 6 hours: 12:00, 18:00 CET, ...
    assert found == [_utc(2026, 1, 10, 11), _utc(2026, 1, 10, 17), _utc(2026, 1, 10, 23)]


@pytest.mark.parametrize(
    ("kind", "expression", "zone", "message"),
    [
        ("cron", "61 * * * *", "UTC", "not a valid cron expression"),
        ("cron", "* * * *", "UTC", "five fields"),
        ("cron", "0 0 * * * *", "UTC", "five fields"),
        ("cron", "", "UTC", "Give a cron expression"),
        ("rrule", "FREQ=SOMETIMES", "UTC", "Not a valid RRULE"),
        ("rrule", "FREQ=SECONDLY", "UTC", "at most once a minute"),
        ("rrule", "DTSTART;TZID=Europe/Paris:20260101T000000\nRRULE:FREQ=DAILY", "UTC", "TZID"),
        ("cron", "0 3 * * *", "Mars/Olympus", "not a time zone"),
        ("cron", "0 3 * * *", "", "not a time zone"),
        ("hourly", "0 3 * * *", "UTC", "Unknown kind"),
        ("cron", "0 0 31 2 *", "UTC", "names no time that exists"),
        ("rrule", "FREQ=DAILY;INTERVAL=0", "UTC", "INTERVAL must be 1 or more"),
        ("rrule", "FREQ=MINUTELY;BYMONTH=2;BYMONTHDAY=30", "UTC", "names no day that exists"),
        ("rrule", "FREQ=DAILY;BYSETPOS=2", "UTC", "BYSETPOS is not supported"),
    ],
)
def test_bad_recurrences_say_why(kind, expression, zone, message):
    with pytest.raises(RecurrenceError, match=message):
        recurrence_check(kind=kind, expression=expression, zone=zone)


def test_an_rrule_that_ended_has_no_next_firing():
    rule = "DTSTART:20260101T080000\nRRULE:FREQ=DAILY;UNTIL=20260103T080000"
    after = _utc(2026, 1, 3, 12)
    assert firing_next(kind="rrule", expression=rule, zone="UTC", after=after) is None
