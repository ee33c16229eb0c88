"""Environment locks: who may take and release them, what they stop, the banner, the
lock page and the API, and the audit rows of each."""

import datetime
import json
import re
import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, connections
from django.template import Context, Template
from django.test import RequestFactory
from django.utils import timezone

from apps.accounts.models import Right, Role
from apps.accounts.permissions import can_lock, can_unlock
from apps.audit.constants import Outcome, Via
from apps.audit.models import AuditEvent
from apps.environments.models import EnvironmentLock
from apps.environments.selectors import active_locks, launch_block
from apps.environments.services import LockRefused, lock_release
from apps.runs.constants import RunStatus
from apps.runs.models import Run
from apps.runs.services import run_follow_up
from tests.clients import api_client, page_client
from tests.environments.helpers import HOUR, hold_lock
from tests.factories import (
    EnvironmentFactory,
    GrantFactory,
    RunFactory,
    ServiceFactory,
    TeamFactory,
    UserFactory,
)
from tests.runs.helpers import queue_held


@pytest.fixture
def world(db):
    """production, with web (every service) and api (only its service) teams on it."""
    production = EnvironmentFactory(slug="production", name="Production")
    web, api = ServiceFactory(slug="web", name="web"), ServiceFactory(slug="api", name="api")
    owner = UserFactory(username="owner")
    GrantFactory(team=TeamFactory(slug="all", members=[owner]), environment=production)
    member = UserFactory(username="member")
    GrantFactory(
        team=TeamFactory(slug="apiteam", members=[member]), service=api, environment=production
    )
    viewer = UserFactory(username="viewer")
    GrantFactory(
        team=TeamFactory(slug="viewers", members=[viewer]),
        environment=production,
        right=Right.VIEW,
    )
    return type(
        "World",
        (),
        dict(
            production=production,
            web=web,
            api=api,
            owner=owner,
            member=member,
            viewer=viewer,
            ops=UserFactory(username="opsuser", role=Role.OPS),
            auditor=UserFactory(username="auditor", role=Role.AUDITOR),
        ),
    )


# --- the service ----------------------------------------------------------------------
def test_a_lock_stops_every_service_and_says_who_why_and_until_when(world):
    lock = hold_lock(world.owner, world.production, reason="Database migration, back at 3pm")

    for service in (world.web, world.api):
        block = launch_block(service=service, environment=world.production)
        assert block is not None and block.kind == "lock" and not block.overridable
        assert block.lock_id == lock.pk
    assert block.reason.startswith("Production is locked by owner until ")
    assert "Database migration, back at 3pm" in block.reason
    assert timezone.localtime(lock.expires_at).strftime("%d %b %Y %H:%M") in block.reason
    row = AuditEvent.objects.get(verb="environment.locked")
    assert (row.actor_name, row.environment, row.outcome) == ("owner", "production", "success")
    assert row.object_id == str(lock.pk)
    assert row.details["reason"] == "Database migration, back at 3pm"
    assert row.details["service"] is None


def test_a_service_lock_stops_only_that_service(world):
    hold_lock(world.member, world.production, world.api)

    block = launch_block(service=world.api, environment=world.production)
    assert block.reason.startswith("api is locked on Production by member until")
    assert launch_block(service=world.web, environment=world.production) is None
    assert launch_block(service=world.api, environment=EnvironmentFactory(slug="qa")) is None


def test_expired_and_released_locks_stop_nothing(world):
    lock = hold_lock(world.owner, world.production)
    assert launch_block(service=world.web, environment=world.production, at=lock.expires_at) is None
    assert launch_block(service=world.web, environment=world.production, at=timezone.now())

    lock_release(lock=lock, user=world.owner, via=Via.WEB)

    assert launch_block(service=world.web, environment=world.production) is None
    assert not active_locks().exists()
    row = AuditEvent.objects.get(verb="environment.unlocked")
    assert (row.actor_name, row.object_id) == ("owner", str(lock.pk))
    lock.refresh_from_db()
    assert lock.released_by_name == "owner" and lock.released_at is not None


@pytest.mark.parametrize(
    ("who", "service", "allowed"),
    [
        ("owner", None, True),  # may run every service there
        ("owner", "api", True),
        ("member", "api", True),  # may run api there
        ("member", None, False),  # ...but not lock everyone else out
        ("member", "web", False),
        ("viewer", "api", False),  # view only
        ("auditor", None, False),
        ("ops", None, True),  # Ops, without any grant
        ("ops", "web", True),
    ],
)
def test_who_may_lock(world, who, service, allowed):
    user = getattr(world, who)
    service = getattr(world, service) if service else None

    assert can_lock(user, environment=world.production, service=service) is allowed
    if allowed:
        hold_lock(user, world.production, service)
        assert EnvironmentLock.objects.count() == 1
        return
    with pytest.raises(LockRefused) as refused:
        hold_lock(user, world.production, service)
    assert refused.value.status == 403
    assert not EnvironmentLock.objects.exists()
    row = AuditEvent.objects.get(verb="environment.lock_refused")
    assert row.outcome == Outcome.REFUSED
    assert row.details["reason"] == refused.value.reason
    assert row.actor_name == user.username


def test_the_refusal_says_what_one_may_do(world):
    with pytest.raises(LockRefused) as refused:
        hold_lock(world.member, world.production)
    assert "lock one of your services there instead" in refused.value.reason
    with pytest.raises(LockRefused) as refused:
        hold_lock(world.auditor, world.production)
    assert refused.value.reason == "Auditors can read everything but change nothing."


def test_its_owner_or_ops_unlock_it_nobody_else(world):
    lock = hold_lock(world.member, world.production, world.api)

    assert can_unlock(world.member, lock) and can_unlock(world.ops, lock)
    for user in (world.owner, world.viewer, world.auditor):
        assert not can_unlock(user, lock)
    with pytest.raises(LockRefused) as refused:
        lock_release(lock=lock, user=world.owner, via=Via.API)
    assert refused.value.status == 403
    assert refused.value.reason == "Only member, who locked it, or Ops can unlock it."
    assert AuditEvent.objects.filter(verb="environment.unlock_refused", actor_name="owner").exists()
    assert launch_block(service=world.api, environment=world.production) is not None

    lock_release(lock=lock, user=world.ops, via=Via.ADMIN)
    assert launch_block(service=world.api, environment=world.production) is None


def test_a_lock_is_released_once(world):
    lock = hold_lock(world.owner, world.production)
    lock_release(lock=lock, user=world.owner, via=Via.WEB)

    with pytest.raises(LockRefused) as refused:
        lock_release(lock=EnvironmentLock.objects.get(), user=world.ops, via=Via.WEB)
    assert refused.value.status == 409
    assert "already released by owner" in refused.value.reason
    assert AuditEvent.objects.filter(verb="environment.unlocked").count() == 1


def test_an_expired_lock_has_nothing_to_unlock(world):
    lock = hold_lock(world.owner, world.production)
    EnvironmentLock.objects.filter(pk=lock.pk).update(
        created_at=timezone.now() - 2 * HOUR, expires_at=timezone.now() - HOUR
    )

    with pytest.raises(LockRefused) as refused:
        lock_release(lock=EnvironmentLock.objects.get(), user=world.owner, via=Via.WEB)
    assert refused.value.status == 409
    assert "expired" in refused.value.reason


@pytest.mark.parametrize(
    ("reason", "expires_in", "field", "message"),
    [
        ("   ", HOUR, "reason", "Say why"),
        ("x", -HOUR, "expires_at", "The expiry must be in the future."),
        ("x", datetime.timedelta(days=31), "expires_at", "A lock lasts at most 30 days."),
        ("x" * 501, HOUR, "reason", "at most 500 characters"),
    ],
)
def test_bad_locks_are_refused_per_field(world, reason, expires_in, field, message):
    with pytest.raises(ValidationError) as invalid:
        hold_lock(world.owner, world.production, reason=reason, expires_in=expires_in)
    assert message in " ".join(invalid.value.message_dict[field])
    assert not EnvironmentLock.objects.exists()
    assert not AuditEvent.objects.filter(verb="environment.locked").exists()


# --- pages --------------------------------------------------------------------------
def test_dev_locks_a_service_from_the_page_and_every_page_shows_it(demo):
    client = page_client(demo.dev)

    page = client.get("/environments/test/lock/?service=hello-web")
    assert page.status_code == 200
    html = page.content.decode()
    assert "All of Test (every service)" in html
    assert re.search(r'<option value="hello-web" selected>hello-web on Test</option>', html)

    response = client.post(
        "/environments/test/lock/",
        {"service": "hello-web", "minutes": "120", "reason": "Load test running", "next": "/runs/"},
    )
    assert response.status_code == 302 and response["Location"] == "/runs/"
    lock = EnvironmentLock.objects.get()
    assert (lock.service, lock.environment.slug, lock.created_by) == (
        demo.service,
        "test",
        demo.dev,
    )
    assert abs(lock.expires_at - timezone.now() - datetime.timedelta(minutes=120)).seconds < 60

    for user in (demo.dev, demo.tester, demo.ops):
        banner = page_client(user).get("/").content.decode()
        assert 'id="environment-blocks"' in banner
        assert "hello-web is locked on Test by dev until" in banner
        assert "Load test running" in banner
    assert "Unlock hello-web on Test" in client.get("/").content.decode()
    # Only its owner and Ops are offered the button.
    assert "Unlock hello-web on Test" not in page_client(demo.tester).get("/").content.decode()
    assert "Unlock hello-web on Test" in page_client(demo.ops).get("/").content.decode()


def test_the_lock_page_says_what_is_wrong_with_each_field(demo):
    response = page_client(demo.dev).post(
        "/environments/test/lock/", {"service": "", "minutes": "7", "reason": ""}
    )

    assert response.status_code == 400
    html = response.content.decode()
    assert re.search(r'id="reason-error">Say why', html)
    assert re.search(r'id="minutes-error">Select a valid choice', html)
    assert not EnvironmentLock.objects.exists()


def test_a_tester_may_lock_hello_web_on_test_but_not_all_of_test(demo):
    client = page_client(demo.tester)

    html = client.get("/environments/test/lock/").content.decode()
    assert "All of Test" not in html
    response = client.post("/environments/test/lock/", {"minutes": "60", "reason": "mine now"})

    assert response.status_code == 403
    assert "Only Ops or a team that may run every service on Test" in response.content.decode()
    assert not EnvironmentLock.objects.exists()
    assert AuditEvent.objects.filter(verb="environment.lock_refused", actor_name="tester").exists()
    # Production: hello-web only to look at, so no lock page at all.
    page = client.get("/environments/production/lock/")
    assert page.status_code == 403
    assert "Only Ops or a team" in page.content.decode()


def test_the_unlock_button_releases_it_and_others_are_refused(demo):
    lock = hold_lock(demo.dev, demo.envs["test"], demo.service)

    refused = page_client(demo.tester).post(f"/locks/{lock.pk}/unlock/", {"next": "/"})
    assert refused.status_code == 403
    assert "Only dev, who locked it, or Ops can unlock it." in refused.content.decode()

    client = page_client(demo.dev)
    response = client.post(f"/locks/{lock.pk}/unlock/", {"next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert launch_block(service=demo.service, environment=demo.envs["test"]) is None
    page = client.get("/").content.decode()
    assert "Unlocked hello-web on Test." in page
    assert 'id="environment-blocks"' not in page


def test_people_who_see_nothing_there_see_no_banner(demo):
    hold_lock(demo.ops, demo.envs["production"], reason="Quarter close")
    outsider = UserFactory(username="outsider")

    assert "Quarter close" not in page_client(outsider).get("/").content.decode()
    assert "Quarter close" in page_client(demo.auditor).get("/").content.decode()


# --- the API --------------------------------------------------------------------------
def _post(client, path, data):
    return client.post(path, json.dumps(data), content_type="application/json")


def test_the_api_locks_lists_and_unlocks(demo):
    api = api_client(demo.dev)

    response = _post(
        api,
        "/api/v1/environments/test/locks/",
        {"reason": "Certificates rotate", "minutes": 30, "service": "hello-web"},
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["environment"], body["service"], body["locked_by"]) == ("test", "hello-web", "dev")
    assert body["active"] is True
    assert body["message"].startswith("hello-web is locked on Test by dev until")
    assert AuditEvent.objects.get(verb="environment.locked").via == Via.API

    listed = api.get("/api/v1/environments/test/locks/").json()
    assert [lock["id"] for lock in listed] == [body["id"]]

    again = api.delete(f"/api/v1/environments/test/locks/{body['id']}/")
    assert again.status_code == 200 and again.json()["released_by"] == "dev"
    assert again.json()["active"] is False
    assert api.get("/api/v1/environments/test/locks/").json() == []
    twice = _post(api, f"/api/v1/environments/test/locks/{body['id']}/unlock/", {})
    assert twice.status_code == 409
    assert "already released by dev" in twice.json()["detail"]


def test_the_api_takes_an_expiry_and_unlocks_by_post(demo):
    api = api_client(demo.ops)
    until = (timezone.now() + datetime.timedelta(days=2)).replace(microsecond=0)

    created = _post(
        api,
        "/api/v1/environments/production/locks/",
        {"reason": "Audit", "expires_at": until.isoformat()},
    )
    assert created.status_code == 201, created.json()
    assert created.json()["service"] is None
    assert EnvironmentLock.objects.get().expires_at == until

    released = _post(
        api, f"/api/v1/environments/production/locks/{created.json()['id']}/unlock/", {}
    )
    assert released.status_code == 200
    assert released.json()["released_by"] == "ops"


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"minutes": 30}, "reason", "This field is required."),
        ({"reason": "x"}, "minutes", "Give either expires_at or minutes"),
        (
            {"reason": "x", "minutes": 30, "expires_at": "2030-01-01T00:00:00Z"},
            "expires_at",
            "either",
        ),
        ({"reason": "x", "minutes": 0}, "minutes", "greater than or equal to 1"),
        ({"reason": "x", "minutes": 60 * 24 * 31}, "minutes", "less than or equal to 43200"),
        ({"reason": "x", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at", "in the future"),
        ({"reason": "x", "expires_at": "tomorrow"}, "expires_at", "Datetime has wrong format"),
        ({"reason": "x", "minutes": 5, "service": "nope"}, "service", "No service 'nope'."),
        ({"reason": "   ", "minutes": 5}, "reason", "This field may not be blank."),
    ],
)
def test_the_api_says_what_is_wrong_with_each_field(demo, data, field, message):
    response = _post(api_client(demo.dev), "/api/v1/environments/test/locks/", data)

    assert response.status_code == 400
    assert message in " ".join(response.json()["errors"][field])
    assert not EnvironmentLock.objects.exists()


def test_the_api_refuses_with_the_reason(demo):
    tester = api_client(demo.tester)

    refused = _post(tester, "/api/v1/environments/test/locks/", {"reason": "x", "minutes": 5})
    assert refused.status_code == 403
    assert refused.json()["detail"].startswith("Only Ops or a team that may run every service")
    assert AuditEvent.objects.get(verb="environment.lock_refused").via == Via.API

    read_only = _post(
        api_client(demo.dev, scopes=["read"]),
        "/api/v1/environments/test/locks/",
        {"reason": "x", "minutes": 5},
    )
    assert read_only.status_code == 403
    assert "no run scope" in read_only.json()["detail"]

    lock = hold_lock(demo.dev, demo.envs["test"], demo.service)
    other = tester.delete(f"/api/v1/environments/test/locks/{lock.pk}/")
    assert other.status_code == 403
    assert other.json()["detail"] == "Only dev, who locked it, or Ops can unlock it."
    assert (
        _post(
            tester, "/api/v1/environments/nowhere/locks/", {"reason": "x", "minutes": 5}
        ).status_code
        == 404
    )
    assert not EnvironmentLock.objects.exclude(pk=lock.pk).exists()


def test_templates_ask_whether_to_draw_a_lock_link(world):
    template = Template(
        "{% load environment_tags %}{% may_lock environment service as ok %}{{ ok }}"
    )

    def drawn(user, service=None):
        request = RequestFactory().get("/")
        request.user = user
        context = {"request": request, "environment": world.production, "service": service}
        return template.render(Context(context))

    assert drawn(world.member, world.api) == "True"
    assert drawn(world.member) == "False"
    assert drawn(world.viewer, world.api) == "False"


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite serializes every writer anyway"
)
def test_releases_at_the_same_time_release_it_once(world):
    lock = hold_lock(world.owner, world.production)
    releasers = 6
    start = threading.Barrier(releasers)
    outcomes = []

    def release(user) -> None:
        try:
            start.wait()
            stale = EnvironmentLock.objects.select_related("environment", "service").get()
            lock_release(lock=stale, user=user, via=Via.API)
            outcomes.append(("released", user.username))
        except LockRefused as exc:
            outcomes.append((exc.status, user.username))
        finally:
            connections.close_all()  # this thread's own connection

    users = [world.owner, world.ops] * (releasers // 2)
    threads = [threading.Thread(target=release, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(str(kind) for kind, _ in outcomes) == ["409"] * (releasers - 1) + ["released"]
    assert AuditEvent.objects.filter(verb="environment.unlocked").count() == 1
    lock.refresh_from_db()
    winner = next(name for kind, name in outcomes if kind == "released")
    assert lock.released_by_name == winner


def test_a_lock_stops_automatic_runs_too(demo):
    deploy = RunFactory(
        action=demo.deploy,
        environment=demo.envs["test"],
        requested_by=demo.dev,
        status=RunStatus.SUCCESSFUL,
        version="1.0.0",
        parameters={"version": "1.0.0"},
        auto_verify=True,
    )
    hold_lock(demo.ops, demo.envs["test"], reason="Network maintenance")

    with queue_held():
        launched = run_follow_up(run=deploy)

    assert launched == []
    assert Run.objects.count() == 1
    deploy.refresh_from_db()
    assert "Test is locked by ops until" in deploy.follow_up_error
    assert "Network maintenance" in deploy.follow_up_error
    refused = AuditEvent.objects.get(verb="run.refused")
    assert refused.via == Via.SYSTEM and "Network maintenance" in refused.details["reason"]
