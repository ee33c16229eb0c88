"""Freeze windows: when they are in force, how Ops define them, what they stop (by page,
API and at the start of a queued run), and the emergency override that passes them."""

import datetime
import json
import zoneinfo
from html import unescape

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.models import Role
from apps.accounts.permissions import can_override_freeze
from apps.accounts.services import token_create
from apps.audit.constants import Outcome, Via
from apps.audit.models import AuditEvent
from apps.environments.constants import FreezeKind
from apps.environments.models import EnvironmentLock, FreezeWindow
from apps.environments.selectors import freeze_in_force, freezes_in_force, launch_block
from apps.runs.constants import RunStatus
from apps.runs.models import Run
from apps.runs.tasks import run_execute
from tests.clients import api_client, api_launch, page_client
from tests.environments.helpers import hold_lock
from tests.factories import (
    EnvironmentFactory,
    GrantFactory,
    ServiceFactory,
    TeamFactory,
    UserFactory,
)
from tests.runs.helpers import launch, queue_held, wait_final

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
UTC = datetime.UTC


def _at(*args, zone=BERLIN) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=zone)


def _weekly(environment, days, start, end, *, zone="Europe/Berlin", **fields) -> FreezeWindow:
    window = FreezeWindow(
        environment=environment,
        name=fields.pop("name", "Weekend freeze"),
        kind=FreezeKind.WEEKLY,
        weekdays=days,
        start_time=datetime.time(*start),
        end_time=datetime.time(*end),
        time_zone=zone,
        **fields,
    )
    window.full_clean()
    window.save()
    return window


def _once(environment, starts_at, ends_at, **fields) -> FreezeWindow:
    window = FreezeWindow(
        environment=environment,
        name=fields.pop("name", "Release day"),
        kind=FreezeKind.ONCE,
        starts_at=starts_at,
        ends_at=ends_at,
        **fields,
    )
    window.full_clean()
    window.save()
    return window


# --- when a window is in force ------------------------------------------------------
# 2026-11-27 is a Friday, 28 and 29 the weekend, 30 a Monday.
@pytest.mark.parametrize(
    ("at", "until"),
    [
        (_at(2026, 11, 27, 23, 59), None),
        (_at(2026, 11, 28, 0, 0), _at(2026, 11, 30, 0, 0)),  # back-to-back days join up
        (_at(2026, 11, 29, 23, 59), _at(2026, 11, 30, 0, 0)),
        (_at(2026, 11, 30, 0, 0), None),
        # 23:30 UTC on Friday is already Saturday in Berlin.
        (datetime.datetime(2026, 11, 27, 23, 30, tzinfo=UTC), _at(2026, 11, 30, 0, 0)),
    ],
)
def test_a_weekend_freeze_holds_all_weekend_in_its_time_zone(db, at, until):
    window = _weekly(EnvironmentFactory(), [5, 6], (0, 0), (0, 0))

    assert window.in_force_until(at) == until


@pytest.mark.parametrize(
    ("at", "until"),
    [
        (_at(2026, 11, 30, 21, 59), None),  # Monday evening, before it starts
        (_at(2026, 11, 30, 22, 0), _at(2026, 12, 1, 6, 0)),
        (_at(2026, 12, 1, 3, 0), _at(2026, 12, 1, 6, 0)),  # Tuesday night: Monday's window
        (_at(2026, 12, 1, 6, 0), None),
        (_at(2026, 11, 28, 3, 0), _at(2026, 11, 28, 6, 0)),  # Friday's runs into Saturday
        (_at(2026, 11, 30, 3, 0), None),  # Sunday night is not chosen
    ],
)
def test_a_window_ending_before_it_starts_runs_past_midnight(db, at, until):
    window = _weekly(EnvironmentFactory(), [0, 1, 2, 3, 4], (22, 0), (6, 0), name="Nights")

    assert window.in_force_until(at) == until
    assert window.schedule() == (
        "every Monday, Tuesday, Wednesday, Thursday, Friday, from 22:00 to 06:00 the next day, "
        "Europe/Berlin time"
    )


def test_the_same_moment_is_in_or_out_by_the_time_zone(db):
    environment = EnvironmentFactory()
    moment = datetime.datetime(2026, 11, 30, 2, 0, tzinfo=UTC)  # Monday 02:00 UTC

    utc = _weekly(environment, [6], (0, 0), (0, 0), zone="UTC", name="Sunday UTC")
    new_york = _weekly(environment, [6], (0, 0), (0, 0), zone="America/New_York", name="Sunday NY")

    assert utc.in_force_until(moment) is None
    assert new_york.in_force_until(moment) == datetime.datetime(
        2026, 11, 30, 0, 0, tzinfo=zoneinfo.ZoneInfo("America/New_York")
    )


def test_a_one_off_window_holds_from_its_start_to_its_end(db):
    start, end = _at(2026, 12, 24, 12, 0), _at(2026, 12, 27, 0, 0)
    window = _once(EnvironmentFactory(), start, end)

    assert window.in_force_until(start - datetime.timedelta(seconds=1)) is None
    assert window.in_force_until(start) == end
    assert window.in_force_until(end) is None


def test_an_inactive_window_holds_nothing(db):
    window = _weekly(EnvironmentFactory(), list(range(7)), (0, 0), (0, 0), active=False)

    assert window.in_force_until(timezone.now()) is None
    assert freeze_in_force(window.environment) is None


def test_freezes_in_force_are_read_in_one_query(db, django_assert_num_queries):
    production, qa = EnvironmentFactory(slug="production"), EnvironmentFactory(slug="qa")
    _weekly(production, list(range(7)), (0, 0), (0, 0), name="Always")
    _weekly(qa, list(range(7)), (0, 0), (0, 0), name="Always on QA", active=False)
    _once(
        production,
        timezone.now() - datetime.timedelta(days=1),
        timezone.now() - datetime.timedelta(hours=1),
    )

    with django_assert_num_queries(1):
        found = freezes_in_force()
    assert [(f.environment.slug, f.window.name) for f in found] == [("production", "Always")]


# --- what Ops may define ---------------------------------------------------------------
WEEKLY = {
    "kind": "weekly",
    "weekdays": [1],
    "start_time": datetime.time(1),
    "end_time": datetime.time(2),
}
ONCE = {"kind": "once", "starts_at": _at(2026, 12, 1, 0, 0), "ends_at": _at(2026, 12, 2, 0, 0)}


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        (
            {"kind": "weekly"},
            {"weekdays": "Choose at least", "start_time": "start time", "end_time": "end time"},
        ),
        ({"kind": "once"}, {"starts_at": "needs its start", "ends_at": "needs its end"}),
        ({**ONCE, "ends_at": ONCE["starts_at"]}, {"ends_at": "The end must be after the start."}),
        ({**ONCE, "weekdays": [1]}, {"weekdays": "Only weekly windows have weekdays"}),
        ({**WEEKLY, "weekdays": [7]}, {"weekdays": "0 (Monday) to 6 (Sunday)"}),
        (
            {**WEEKLY, "time_zone": "Mars/Olympus"},
            {"time_zone": "'Mars/Olympus' is not a time zone name"},
        ),
        ({**WEEKLY, "starts_at": ONCE["starts_at"]}, {"starts_at": "Only one-off windows have a"}),
    ],
)
def test_bad_windows_are_refused_per_field(db, fields, errors):
    window = FreezeWindow(environment=EnvironmentFactory(), name="x", **fields)

    with pytest.raises(ValidationError) as invalid:
        window.full_clean()
    for field, message in errors.items():
        assert message in " ".join(invalid.value.message_dict[field])


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "once", "starts_at": _at(2026, 12, 1, 0, 0)},
        {**ONCE, "ends_at": ONCE["starts_at"]},
        {"kind": "weekly", "weekdays": [1], "start_time": datetime.time(1)},
    ],
)
def test_the_database_refuses_an_incomplete_window_too(db, fields):
    with pytest.raises(IntegrityError), transaction.atomic():
        FreezeWindow.objects.create(environment=EnvironmentFactory(), name="x", **fields)


def test_ops_define_a_weekly_window_in_the_admin_and_it_is_audited(db, ops):
    production = EnvironmentFactory(slug="production", name="Production")
    client = page_client(ops)

    response = client.post(
        "/admin/environments/freezewindow/add/",
        {
            "environment": production.pk,
            "name": "Weekend freeze",
            "reason": "Nobody is on call",
            "active": "on",
            "kind": "weekly",
            "weekdays": ["5", "6"],
            "start_time": "00:00",
            "end_time": "00:00",
            "time_zone": "Europe/Berlin",
        },
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    window = FreezeWindow.objects.get()
    assert window.weekdays == [5, 6]
    assert window.schedule() == "every Saturday, Sunday, all day, Europe/Berlin time"
    row = AuditEvent.objects.get(verb="freeze_window.create")
    assert (row.actor_name, row.environment) == ("ops", "production")
    listing = client.get("/admin/environments/freezewindow/").content.decode()
    assert "every Saturday, Sunday, all day, Europe/Berlin time" in listing


def test_the_admin_says_what_is_wrong_with_a_window(db, ops):
    client = page_client(ops)

    response = client.post(
        "/admin/environments/freezewindow/add/",
        {"environment": EnvironmentFactory().pk, "name": "x", "kind": "weekly", "time_zone": "UTC"},
    )

    assert response.status_code == 200
    assert "Choose at least one day." in response.content.decode()
    assert not FreezeWindow.objects.exists()


@pytest.mark.parametrize("superuser", [True, False])
def test_ops_release_a_lock_in_the_admin_through_the_service(db, superuser):
    ops = UserFactory(username="ops", role=Role.OPS, is_staff=True, is_superuser=superuser)
    production = EnvironmentFactory(slug="production", name="Production")
    owner = UserFactory(username="owner")
    GrantFactory(team=TeamFactory(slug="owners", members=[owner]), environment=production)
    lock = hold_lock(owner, production, reason="Failover test", via=Via.API)
    client = page_client(ops)

    response = client.post(
        "/admin/environments/environmentlock/",
        {"action": "release", "_selected_action": [lock.pk]},
        follow=True,
    )

    assert "Released 1 lock(s)." in response.content.decode()
    lock.refresh_from_db()
    assert lock.released_by_name == "ops"
    row = AuditEvent.objects.get(verb="environment.unlocked")
    assert (row.via, row.actor_name) == (Via.ADMIN, "ops")
    # Locks are not edited or deleted there: their history stays.
    assert client.get(f"/admin/environments/environmentlock/{lock.pk}/delete/").status_code == 403


# --- what a freeze stops -----------------------------------------------------------------
def _always(environment, **fields) -> FreezeWindow:
    return _weekly(
        environment,
        list(range(7)),
        (0, 0),
        (0, 0),
        zone="UTC",
        name=fields.pop("name", "Year-end freeze"),
        reason=fields.pop("reason", "Finance closes the books"),
        **fields,
    )


def test_a_freeze_says_which_window_why_and_until_when(db):
    production = EnvironmentFactory(slug="production", name="Production")
    window = _always(production)

    block = launch_block(service=ServiceFactory(), environment=production)

    assert (block.kind, block.overridable, block.freeze_id) == ("freeze", True, window.pk)
    assert block.reason.startswith(
        "Production is frozen by the freeze window “Year-end freeze” (every day, all day, UTC time)"
    )
    assert "Finance closes the books" in block.reason
    assert "until " in block.reason and block.until > timezone.now() + datetime.timedelta(days=6)


def test_a_lock_wins_over_a_freeze(db, ops):
    production = EnvironmentFactory(slug="production", name="Production")
    service = ServiceFactory()
    _always(production)
    hold_lock(ops, production, reason="Incident 42")

    block = launch_block(service=service, environment=production)

    assert (block.kind, block.overridable) == ("lock", False)
    assert "Incident 42" in block.reason


def test_the_emergency_right_is_explicit_per_environment(db):
    production, qa = EnvironmentFactory(slug="production"), EnvironmentFactory(slug="qa")
    oncall = UserFactory(username="oncall")
    team = TeamFactory(slug="oncall", members=[oncall])
    production.emergency_teams.add(team)

    assert can_override_freeze(oncall, environment=production)
    assert not can_override_freeze(oncall, environment=qa)
    assert not can_override_freeze(UserFactory(username="other"), environment=production)
    # Ops only through a team with the right; an auditor never.
    assert not can_override_freeze(UserFactory(username="o", role=Role.OPS), environment=production)
    auditor = UserFactory(username="a", role=Role.AUDITOR)
    team.memberships.create(user=auditor)
    assert not can_override_freeze(auditor, environment=production)
    # A read-only token of the right person does not carry it.
    token, _key = token_create(user=oncall, name="ro", acting_user=None, via="cli", scopes=["read"])
    oncall.api_token = token
    assert not can_override_freeze(oncall, environment=production)


# --- through the portal: page, API, the worker ------------------------------------------
@pytest.fixture
def oncall(demo):
    """dev may override freezes on Test (the demo's "web" team is its emergency team)."""
    demo.envs["test"].emergency_teams.add(demo.dev.teams.get(slug="web"))
    return demo.dev


def test_the_api_refuses_a_deploy_in_a_freeze_with_the_reason(demo):
    _always(demo.envs["test"])

    response = api_launch(api_client(demo.dev), "test", "1.0.0")

    assert response.status_code == 409
    assert response.json()["detail"].startswith(
        "Test is frozen by the freeze window “Year-end freeze”"
    )
    assert not Run.objects.exists()
    row = AuditEvent.objects.get(verb="run.refused")
    assert row.outcome == Outcome.REFUSED and "frozen" in row.details["reason"]


def test_the_api_refuses_a_deploy_on_a_locked_environment_even_in_an_emergency(oncall, demo):
    hold_lock(demo.ops, demo.envs["test"], reason="Disk replacement")

    response = api_launch(api_client(oncall), "test", "1.0.0", emergency_reason="Site down")

    assert response.status_code == 409
    assert "Test is locked by ops until" in response.json()["detail"]
    assert "Disk replacement" in response.json()["detail"]
    assert not Run.objects.exists()


def test_a_dry_run_passes_a_freeze(demo):
    _always(demo.envs["test"])

    with queue_held():
        response = api_launch(api_client(demo.dev), "test", "1.0.0", check=True)

    assert response.status_code == 201, response.json()
    assert Run.objects.get().check_mode


def test_an_emergency_override_needs_the_right(demo):
    _always(demo.envs["test"])

    response = api_launch(
        api_client(demo.dev), "test", "1.0.0", emergency_reason="Checkout is down"
    )

    assert response.status_code == 403
    assert "emergency right" in response.json()["detail"]
    assert not Run.objects.exists()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_an_emergency_deploy_in_a_freeze_runs_and_is_marked(celery_worker, oncall, demo):
    _always(demo.envs["test"])

    response = api_launch(api_client(oncall), "test", "1.0.1", emergency_reason="Checkout is down")

    assert response.status_code == 201, response.json()
    run = wait_final(Run.objects.get(pk=response.json()["id"]))
    assert run.status == RunStatus.SUCCESSFUL, run.error
    assert run.emergency and run.emergency_reason == "Checkout is down"
    assert (demo.targets / "test" / "current" / "VERSION").read_text() == "1.0.1\n"
    # Marked in the audit log by its own verb.
    row = AuditEvent.objects.get(verb="run.emergency", object_id=str(run.pk))
    assert row.details["emergency"] is True
    assert "Checkout is down" in json.dumps(row.details)
    page = page_client(oncall)
    assert "Checkout is down" in page.get(run.get_absolute_url()).content.decode()


def test_the_run_page_refuses_a_deploy_in_a_freeze_and_says_why(demo):
    _always(demo.envs["test"])
    client = page_client(demo.dev)

    response = client.post("/services/hello-web/deploy/test/", {"version": "1.0.0"})

    html = unescape(response.content.decode())
    assert "Test is frozen by the freeze window “Year-end freeze”" in html
    assert "Finance closes the books" in html
    assert not Run.objects.exists()


def test_the_run_page_takes_an_emergency_override(oncall, demo):
    _always(demo.envs["test"])
    client = page_client(oncall)

    with queue_held():
        response = client.post(
            "/services/hello-web/deploy/test/",
            {"version": "1.0.0", "pushbutton_emergency_reason": "Payment outage"},
        )

    assert response.status_code == 302, response.content.decode()[:2000]
    run = Run.objects.get()
    assert run.emergency and run.emergency_reason == "Payment outage"
    assert AuditEvent.objects.get(verb="run.emergency").details["emergency_reason"] == (
        "Payment outage"
    )


@pytest.mark.parametrize("block", ["freeze", "lock"])
def test_a_queued_run_that_meets_a_block_at_its_start_does_not_run(demo, block):
    with queue_held():
        run = launch(demo.dev, demo.deploy, demo.envs["test"], {"version": "1.0.0"})
    if block == "freeze":
        _always(demo.envs["test"])
    else:
        hold_lock(demo.dev, demo.envs["test"], reason="Hold everything")

    run_execute.apply(args=[run.pk])  # what the worker does when it takes the task

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.started_at is None
    assert run.error.startswith("Not started: Test is ")
    assert ("frozen" if block == "freeze" else "Hold everything") in run.error
    assert not (demo.targets / "test" / "current").exists()


def test_a_queued_emergency_run_passes_the_freeze_at_its_start_but_not_a_lock(oncall, demo):
    _always(demo.envs["test"])
    with queue_held():
        run = launch(
            oncall, demo.deploy, demo.envs["test"], {"version": "1.0.0"}, emergency_reason="Outage"
        )
    hold_lock(demo.ops, demo.envs["test"], reason="Datacenter move")

    run_execute.apply(args=[run.pk])

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "Datacenter move" in run.error
    assert EnvironmentLock.objects.count() == 1


def test_the_banner_shows_a_freeze_in_force(demo):
    _always(demo.envs["production"], name="Year-end freeze")
    client = page_client(demo.tester)

    html = unescape(client.get("/").content.decode())

    assert "Frozen" in html
    assert "Production is frozen by the freeze window “Year-end freeze” (every day" in html
