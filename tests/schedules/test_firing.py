"""Firing schedules through the one launch path, as the person who scheduled them, at a
fixed time: fired, skipped, missed, refused, each recorded and audited."""

import json
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from apps.accounts.models import Grant
from apps.audit.constants import Via
from apps.audit.models import AuditEvent
from apps.catalog.parameters import MASK
from apps.environments.constants import FreezeKind
from apps.environments.models import FreezeWindow
from apps.runs.constants import RunStatus
from apps.runs.models import Run
from apps.runs.services import run_secret_values
from apps.schedules import services
from apps.schedules.constants import Outcome, WhenBusy
from apps.schedules.models import Firing, Schedule
from tests.clients import page_client
from tests.factories import ActionFactory, UserFactory
from tests.schedules.helpers import fire_when_due, schedule_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def action(local_env):
    return ActionFactory(
        environments=[local_env],
        slug="smoke",
        form=[{"name": "message", "type": "string", "default": "hello"}],
    )


def _verbs(schedule) -> list[str]:
    return list(
        AuditEvent.objects.filter(object_type="schedules.schedule", object_id=str(schedule.pk))
        .order_by("id")
        .values_list("verb", flat=True)
    )


def test_a_firing_launches_a_run_as_the_person_who_scheduled_it(dev, action, local_env):
    schedule = schedule_make(dev, action, local_env, parameters={"message": "nightly"})

    [firing] = fire_when_due(schedule)

    assert firing.outcome == Outcome.FIRED
    run = firing.run
    assert run.requested_by == dev and run.status == RunStatus.QUEUED
    assert run.parameters == {"message": "nightly"}
    requested = AuditEvent.objects.get(verb="run.requested", object_id=str(run.pk))
    assert requested.actor_id == dev.pk and requested.via == Via.SYSTEM
    assert _verbs(schedule) == ["schedule.created", "schedule.fired"]
    schedule.refresh_from_db()
    assert schedule.next_due_at == firing.due_at + timedelta(minutes=15)
    # Its page and the API say it was scheduled, and by which schedule.
    page = page_client(dev).get(run.get_absolute_url()).content.decode()
    assert "Scheduled by" in page and schedule.get_absolute_url() in page
    assert schedule.name in page
    listed = page_client(dev).get("/runs/").text
    assert f'href="{schedule.get_absolute_url()}" title="Launched by the schedule' in listed


def test_a_firing_after_the_grant_was_withdrawn_is_refused_and_the_page_says_why(
    dev, ops, action, local_env
):
    schedule = schedule_make(dev, action, local_env)
    Grant.objects.filter(team__memberships__user=dev).delete()

    [firing] = fire_when_due(schedule)

    assert firing.outcome == Outcome.REFUSED and firing.run is None
    assert "No grant of your teams lets you run" in firing.reason
    assert not Run.objects.exists()
    assert _verbs(schedule)[-1] == "schedule.refused"
    assert AuditEvent.objects.filter(verb="run.refused").exists()
    page = page_client(ops).get(schedule.get_absolute_url()).content.decode()
    assert "Its last firing was refused" in page and "No grant of your teams" in page


def test_a_firing_of_a_deactivated_user_is_refused(dev, action, local_env):
    schedule = schedule_make(dev, action, local_env)
    dev.is_active = False
    dev.save()

    [firing] = fire_when_due(schedule)

    assert firing.outcome == Outcome.REFUSED
    assert "The account of dev, as whom it runs, is deactivated" in firing.reason
    assert not Run.objects.exists()


def test_a_firing_while_the_previous_run_still_goes_is_skipped(dev, action, local_env):
    schedule = schedule_make(dev, action, local_env)
    [first] = fire_when_due(schedule)

    [second] = fire_when_due(schedule)

    assert second.outcome == Outcome.SKIPPED and second.run is None
    assert f"Run #{first.run.pk} of its previous firing is still queued." == second.reason
    assert Run.objects.count() == 1
    assert _verbs(schedule)[-1] == "schedule.skipped"


def test_a_schedule_that_queues_waits_in_the_deploy_queue(dev, action, local_env):
    schedule = schedule_make(dev, action, local_env, when_busy=WhenBusy.QUEUE)
    [first] = fire_when_due(schedule)

    [second] = fire_when_due(schedule)

    assert second.outcome == Outcome.FIRED
    assert second.run.status == RunStatus.WAITING
    assert first.run.status == RunStatus.QUEUED


def test_firings_missed_while_the_portal_was_down_are_recorded_not_caught_up(
    dev, action, local_env
):
    schedule = schedule_make(dev, action, local_env)
    due = schedule.next_due_at
    # Down for two hours and ten minutes: every quarter in between is long past.
    now = due + timedelta(hours=2, minutes=10)

    [missed] = services.schedules_fire_due(now=now)

    assert missed.outcome == Outcome.MISSED and missed.due_at == due
    assert missed.reason.startswith("9 firings (from ")
    assert "not caught up" in missed.reason
    assert not Run.objects.exists()
    schedule.refresh_from_db()
    assert now < schedule.next_due_at <= now + timedelta(minutes=15)
    assert _verbs(schedule)[-1] == "schedule.missed"
    # Nothing is left to fire now.
    assert services.schedules_fire_due(now=now) == []


def test_a_firing_due_within_the_grace_fires_and_those_before_it_are_missed(dev, action, local_env):
    schedule = schedule_make(dev, action, local_env)
    due = schedule.next_due_at

    missed, fired = services.schedules_fire_due(now=due + timedelta(minutes=31))

    assert (missed.outcome, missed.due_at) == (Outcome.MISSED, due)
    assert missed.reason.startswith("2 firings")
    assert (fired.outcome, fired.due_at) == (Outcome.FIRED, due + timedelta(minutes=30))
    assert Run.objects.count() == 1


def test_a_freeze_refuses_the_firing(dev, action, local_env):
    schedule = schedule_make(dev, action, local_env)
    now = timezone.now()
    FreezeWindow.objects.create(
        environment=local_env,
        name="Release day",
        reason="The release is being cut",
        kind=FreezeKind.ONCE,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=1),
    )

    [firing] = fire_when_due(schedule)

    assert firing.outcome == Outcome.REFUSED
    assert "Release day" in firing.reason
    assert not Run.objects.exists()


def test_a_paused_schedule_does_not_fire_and_resumes_from_now(dev, action, local_env):
    schedule = schedule_make(dev, action, local_env)
    due = schedule.next_due_at
    services.schedule_pause(schedule=schedule, acting_user=dev, via=Via.WEB)

    assert services.schedules_fire_due(now=due + timedelta(seconds=1)) == []

    services.schedule_resume(schedule=schedule, acting_user=dev, via=Via.WEB)
    assert schedule.next_due_at > timezone.now()
    assert not Firing.objects.exists()
    assert _verbs(schedule) == ["schedule.created", "schedule.paused", "schedule.resumed"]


def test_a_change_makes_it_run_as_whoever_changed_it(dev, action, local_env):
    schedule = schedule_make(dev, action, local_env)
    colleague = UserFactory(username="colleague")
    Grant.objects.get(team__slug="developers").team.memberships.create(user=colleague)

    services.schedule_change(
        schedule=schedule,
        data=services.ScheduleInput(
            name="Hourly smoke",
            service=action.service,
            action=action,
            environment=local_env,
            kind="rrule",
            expression="FREQ=HOURLY",
            time_zone="UTC",
        ),
        acting_user=colleague,
        via=Via.WEB,
    )

    [firing] = fire_when_due(schedule)
    assert firing.run.requested_by == colleague
    change = AuditEvent.objects.get(verb="schedule.changed")
    assert change.actor_id == colleague.pk
    assert change.details["changed"] == ["expression", "kind", "name", "runs_as", "time_zone"]
    services.schedule_delete(schedule=schedule, acting_user=colleague, via=Via.WEB)
    assert AuditEvent.objects.filter(verb="schedule.deleted").exists()
    assert Run.objects.get() == firing.run  # its runs stay


def test_secret_parameters_are_stored_encrypted_rotated_and_given_to_the_run(dev, local_env):
    action = ActionFactory(environments=[local_env], form=[{"name": "pw", "type": "secret"}])
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(FIELD_ENCRYPTION_KEY=old):
        schedule = schedule_make(dev, action, local_env, parameters={"pw": "s3cret-value"})
    assert schedule.parameters == {"pw": MASK}
    assert "s3cret-value" not in schedule.secret_parameters
    assert "s3cret-value" not in json.dumps(list(AuditEvent.objects.values("details")))

    out = StringIO()
    with override_settings(FIELD_ENCRYPTION_KEY=f"{new},{old}"):
        call_command("rotate_encryption_key", stdout=out)
    assert "and 1 schedule(s)" in out.getvalue()

    with override_settings(FIELD_ENCRYPTION_KEY=new):  # the old key is gone
        [firing] = fire_when_due(schedule)
        assert firing.outcome == Outcome.FIRED
        assert run_secret_values(run=firing.run) == {"pw": "s3cret-value"}


def test_a_schedule_that_cannot_be_fired_is_refused_and_the_others_still_fire(
    dev, action, local_env
):
    broken = schedule_make(dev, action, local_env, name="Broken")
    other = schedule_make(dev, ActionFactory(environments=[local_env]), local_env, name="Other")
    # What only a changed world can do: its time zone left the system's database.
    Schedule.objects.filter(pk=broken.pk).update(time_zone="Gone/Away")

    firings = fire_when_due(other)

    assert {(f.schedule.name, f.outcome) for f in firings} == {
        ("Broken", Outcome.REFUSED),
        ("Other", Outcome.FIRED),
    }
    refused = next(f for f in firings if f.schedule.name == "Broken")
    assert "It could not be fired (RecurrenceError" in refused.reason
    broken.refresh_from_db()
    assert broken.next_due_at is None


@pytest.mark.parametrize(
    ("first_due", "expected"),
    [
        # 2027: clocks go forward on 28 March (02:30 does not exist: fired at 03:00)...
        (
            datetime(2027, 3, 27, 1, 30, tzinfo=UTC),
            [(3, 27, 1, 30), (3, 28, 1, 0), (3, 29, 0, 30), (3, 30, 0, 30)],
        ),
        # ... and back on 31 October (02:30 happens twice: fired at the first only).
        (
            datetime(2027, 10, 30, 0, 30, tzinfo=UTC),
            [(10, 30, 0, 30), (10, 31, 0, 30), (11, 1, 1, 30), (11, 2, 1, 30)],
        ),
    ],
    ids=["spring-forward", "fall-back"],
)
def test_a_daily_0230_schedule_fires_once_a_day_across_a_dst_change(
    dev, action, local_env, first_due, expected
):
    schedule = schedule_make(dev, action, local_env, expression="30 2 * * *")
    Schedule.objects.filter(pk=schedule.pk).update(next_due_at=first_due)

    for _ in expected:
        fire_when_due(schedule)

    dues = list(Firing.objects.order_by("due_at").values_list("due_at", flat=True))
    assert dues == [datetime(2027, *at, tzinfo=UTC) for at in expected]
    assert Firing.objects.exclude(outcome=Outcome.MISSED).count() == len(expected)
