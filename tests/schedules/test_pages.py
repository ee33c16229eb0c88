"""The schedules' pages: who may create, see and manage a schedule; what a page shows;
bad input answered field by field."""

import re

import pytest
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

from apps.accounts.models import Right, Role
from apps.audit.models import AuditEvent
from apps.schedules.models import Schedule
from tests.clients import page_client
from tests.factories import ActionFactory, EnvironmentFactory, GrantFactory, UserFactory
from tests.schedules.helpers import schedule_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def action(local_env):
    return ActionFactory(
        environments=[local_env],
        slug="smoke",
        label="Smoke test",
        form=[
            {"name": "message", "type": "string", "required": True},
            {"name": "retries", "type": "integer", "min": 0, "max": 5, "default": 1},
        ],
    )


def _create_url(action, environment) -> str:
    return f"/schedules/new/{action.service.slug}/{action.slug}/{environment.slug}/"


def _post(client, action, environment, **fields):
    data = {
        "schedule-name": "Nightly smoke",
        "schedule-kind": "cron",
        "schedule-expression": "30 2 * * *",
        "schedule-time_zone": "Europe/Berlin",
        "schedule-when_busy": "skip",
        "message": "hi",
        "retries": "2",
    }
    data.update(fields)
    return client.post(_create_url(action, environment), data)


def test_a_developer_with_a_run_grant_schedules_an_action(dev, action, local_env):
    client = page_client(dev)
    run_form = client.get(f"/services/{action.service.slug}/{action.slug}/{local_env.slug}/")
    assert f'href="{_create_url(action, local_env)}">Schedule it</a>' in run_form.text
    choice = client.get("/schedules/new/")
    assert f"{action.service.name}: Smoke test on Local" in choice.content.decode()
    picked = client.get("/schedules/new/", {"target": f"{action.pk}:{local_env.pk}"})
    assert picked.status_code == 302 and picked.url == _create_url(action, local_env)

    answer = _post(client, action, local_env)

    schedule = Schedule.objects.get()
    assert answer.status_code == 302 and answer.url == schedule.get_absolute_url()
    assert schedule.owner == dev and schedule.parameters == {"message": "hi", "retries": 2}
    assert AuditEvent.objects.filter(verb="schedule.created", actor_id=dev.pk).exists()
    page = client.get(schedule.get_absolute_url()).content.decode()
    # The next five firings, at 02:30 in the schedule's time zone.
    firings = re.findall(r"<li><time [^>]*>([^<]*)</time></li>", page)
    assert len(firings) == 5 and all(" 02:30 CE" in text for text in firings), firings
    assert "Runs as</dt><dd>dev" in page
    listed = client.get("/schedules/").content.decode()
    assert "Nightly smoke" in listed


@pytest.mark.parametrize(
    ("fields", "field_id", "message"),
    [
        ({"schedule-expression": "61 2 * * *"}, "schedule-expression", "not a valid cron"),
        (
            {"schedule-kind": "rrule", "schedule-expression": "FREQ=NEVER"},
            "schedule-expression",
            "Not a valid RRULE",
        ),
        ({"schedule-time_zone": "Europe/Atlantis"}, "schedule-time_zone", "not a time zone"),
        ({"schedule-name": ""}, "schedule-name", "Give the schedule a name."),
        ({"schedule-kind": "sometimes"}, "schedule-kind", "Choose cron or rrule."),
        ({"retries": "9"}, "retries", "less than or equal to 5"),
        ({"message": ""}, "message", "This field is required."),
    ],
)
def test_bad_input_is_answered_field_by_field(dev, action, local_env, fields, field_id, message):
    answer = _post(page_client(dev), action, local_env, **fields)

    assert answer.status_code == 400
    page = answer.content.decode()
    assert re.search(rf'<p class="error" id="{field_id}-error">[^<]*{message}', page), page
    assert not Schedule.objects.exists()


def test_someone_without_a_run_grant_may_not_schedule(dev, action, local_env):
    outsider = UserFactory(username="outsider")
    client = page_client(outsider)

    assert client.get(_create_url(action, local_env)).status_code == 403
    assert _post(client, action, local_env).status_code == 403
    assert "You may run no action" in client.get("/schedules/new/").content.decode()
    auditor = page_client(UserFactory(username="aud", role=Role.AUDITOR))
    assert _post(auditor, action, local_env).status_code == 403
    assert not Schedule.objects.exists()


def test_an_environment_asking_for_a_code_at_each_launch_cannot_be_scheduled(dev, action):
    guarded = EnvironmentFactory(slug="guarded", name="Guarded", require_mfa=True)
    action.environments.add(guarded)
    GrantFactory(team=dev.teams.get(), environment=guarded, right=Right.RUN)
    TOTP.activate(dev, generate_totp_secret())
    client = page_client(dev)

    answer = _post(client, action, guarded)

    assert answer.status_code == 400
    assert "Guarded requires two-factor authentication at each launch" in answer.text
    assert not Schedule.objects.exists()
    assert "on Guarded" not in client.get("/schedules/new/").text


def test_who_sees_and_who_manages_a_schedule(dev, ops, action, local_env):
    schedule = schedule_make(dev, action, local_env, parameters={"message": "hi"})
    url = schedule.get_absolute_url()
    colleague = UserFactory(username="colleague")
    GrantFactory(team=dev.teams.get(), environment=local_env, right=Right.VIEW)
    dev.teams.get().memberships.create(user=colleague)
    outsider = UserFactory(username="outsider")

    assert page_client(outsider).get(url).status_code == 404
    assert "Nightly" not in page_client(outsider).get("/schedules/").content.decode()
    assert page_client(outsider).post(f"{url}pause/").status_code == 404

    colleague_page = page_client(colleague).get(url)
    assert colleague_page.status_code == 200 and "Pause</button>" not in colleague_page.text
    assert page_client(colleague).post(f"{url}pause/").status_code == 403
    assert page_client(colleague).get(f"{url}edit/").status_code == 403

    assert "Pause</button>" in page_client(dev).get(url).text
    assert page_client(ops).post(f"{url}pause/").status_code == 302
    schedule.refresh_from_db()
    assert schedule.paused and schedule.next_due_at is None
    assert "None while it is paused." in page_client(dev).get(url).text
    assert page_client(dev).post(f"{url}resume/").status_code == 302
    assert page_client(ops).post(f"{url}delete/").status_code == 302
    assert not Schedule.objects.exists()
    verbs = list(
        AuditEvent.objects.filter(verb__startswith="schedule.")
        .order_by("id")
        .values_list("verb", "actor_name")
    )
    assert verbs == [
        ("schedule.created", "dev"),
        ("schedule.paused", "ops"),
        ("schedule.resumed", "dev"),
        ("schedule.deleted", "ops"),
    ]


def test_the_owner_changes_a_schedule_and_bad_input_keeps_it_unchanged(dev, action, local_env):
    schedule = schedule_make(dev, action, local_env, parameters={"message": "hi"})
    client = page_client(dev)
    edit = f"{schedule.get_absolute_url()}edit/"
    form = client.get(edit).content.decode()
    assert 'value="*/15 * * * *"' in form

    bad = client.post(
        edit,
        {
            "schedule-name": "Quarterly",
            "schedule-kind": "cron",
            "schedule-expression": "every day",
            "schedule-time_zone": "UTC",
            "schedule-when_busy": "queue",
            "message": "hi",
        },
    )
    assert bad.status_code == 400 and "five fields" in bad.text
    good = client.post(
        edit,
        {
            "schedule-name": "Weekdays",
            "schedule-kind": "rrule",
            "schedule-expression": "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=6;BYMINUTE=0",
            "schedule-time_zone": "America/New_York",
            "schedule-when_busy": "queue",
            "message": "morning",
        },
    )
    assert good.status_code == 302
    schedule.refresh_from_db()
    assert (schedule.name, schedule.when_busy, schedule.parameters["message"]) == (
        "Weekdays",
        "queue",
        "morning",
    )
    assert AuditEvent.objects.filter(verb="schedule.changed").count() == 1
