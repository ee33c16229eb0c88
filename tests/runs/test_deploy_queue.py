"""The deploy queue: a deploy that finds the service's lock held waits, when it (or its
environment) asks to queue, and starts when the lock frees, in arrival order, every rule
checked again then; an older version is skipped once a newer one succeeded meanwhile.

Runs are launched through the API and the services as users launch them; a run ends
through `run_end`, the one door out, as the worker ends it; nothing reaches a broker
(`queue_held`), so which runs were sent to a worker is read off what was sent."""

from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from apps.accounts.models import Grant
from apps.audit.models import AuditEvent
from apps.environments.constants import WhenLocked
from apps.environments.models import EnvironmentLock
from apps.runs import services
from apps.runs.constants import RunStatus
from apps.runs.models import Run
from apps.runs.tasks import runs_reap
from tests.clients import api_client, api_launch, page_client
from tests.runs.helpers import launch, queue_held

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sent():
    """The runs sent to a worker, by id, in order. The follow-ups' tasks are held too: a
    worker alive in the session must not launch them behind the test's back."""
    with queue_held() as task_send, mock.patch("apps.runs.services.follow_ups.task_send"):
        yield lambda: [c.kwargs["args"][0] for c in task_send.call_args_list]


@pytest.fixture
def test_env(demo):
    return demo.envs["test"]


def _deploy(demo, version, **body):
    response = api_launch(api_client(demo.dev), "test", version, **body)
    assert response.status_code == 201, response.content
    return response.json()


def _end(run_id, status=RunStatus.SUCCESSFUL):
    run = Run.objects.get(pk=run_id)
    return services.run_end(run=run, status=status, rc=0 if status == RunStatus.SUCCESSFUL else 2)


def _status(run_id):
    return Run.objects.get(pk=run_id).status


def test_a_deploy_asking_to_queue_waits_with_its_place_in_line(demo, sent):
    first = _deploy(demo, "1.0.0")
    second = _deploy(demo, "1.1.0", when_locked="queue")
    third = _deploy(demo, "1.2.0", when_locked="queue")

    assert second["status"] == "waiting"
    assert second["waiting"] == {
        "position": 1,
        "waiting_for": first["id"],
        "reason": f"Waits for run #{first['id']} (Deploy, queued) to end.",
    }
    assert third["waiting"]["position"] == 2
    assert "behind 1 other in line" in third["waiting"]["reason"]
    assert sent() == [first["id"]]  # the waiting ones were not sent to a worker
    audit = AuditEvent.objects.get(verb="run.requested", object_id=str(second["id"]))
    assert audit.details["waits"] is True


def test_without_asking_a_deploy_on_a_busy_service_is_refused_as_before(demo, sent):
    first = _deploy(demo, "1.0.0")

    response = api_launch(api_client(demo.dev), "test", "1.1.0")

    assert response.status_code == 409
    assert response.json()["lock"]["run"] == first["id"]


def test_an_environment_set_to_queue_queues_unless_the_request_says_refuse(demo, test_env, sent):
    test_env.when_locked = WhenLocked.QUEUE
    test_env.save()
    _deploy(demo, "1.0.0")

    assert _deploy(demo, "1.1.0")["status"] == "waiting"
    refused = api_launch(api_client(demo.dev), "test", "1.2.0", when_locked="refuse")
    assert refused.status_code == 409


def test_a_bad_when_locked_is_a_400_naming_the_field(demo, sent):
    response = api_launch(api_client(demo.dev), "test", "1.0.0", when_locked="later")

    assert response.status_code == 400
    assert "when_locked" in response.json()["errors"]


def test_when_the_lock_frees_the_next_in_line_starts_in_arrival_order(demo, sent):
    first = _deploy(demo, "1.0.0")
    second = _deploy(demo, "1.1.0", when_locked="queue")
    third = _deploy(demo, "1.2.0", when_locked="queue")

    _end(first["id"])

    assert _status(second["id"]) == RunStatus.QUEUED
    assert _status(third["id"]) == RunStatus.WAITING
    assert sent() == [first["id"], second["id"]]
    detail = api_client(demo.dev).get(f"/api/v1/runs/{third['id']}/").json()
    assert detail["waiting"]["position"] == 1
    assert detail["waiting"]["waiting_for"] == second["id"]
    assert AuditEvent.objects.filter(verb="run.queued", object_id=str(second["id"])).exists()

    _end(second["id"], RunStatus.FAILED)  # a failure frees the lock as well

    assert _status(third["id"]) == RunStatus.QUEUED
    assert sent()[-1] == third["id"]


def test_an_older_version_waiting_is_superseded_by_a_newer_one_that_succeeded(demo, sent):
    newer = _deploy(demo, "2.0.0")
    older = _deploy(demo, "1.9.0", when_locked="queue")
    later = _deploy(demo, "2.1.0", when_locked="queue")

    _end(newer["id"])

    run = Run.objects.get(pk=older["id"])
    assert run.status == RunStatus.SUPERSEDED
    assert run.error == (
        f"Superseded: hello-web 2.0.0 succeeded on Test (run #{newer['id']}) while it waited, "
        "so 1.9.0 was not deployed over it."
    )
    assert run.started_at is None
    assert _status(later["id"]) == RunStatus.QUEUED  # the line moved on past it
    assert older["id"] not in sent()
    audit = AuditEvent.objects.get(verb="run.superseded")
    assert audit.details["superseded_by"] == newer["id"]


def test_an_older_version_is_not_superseded_when_the_newer_one_failed(demo, sent):
    newer = _deploy(demo, "2.0.0")
    older = _deploy(demo, "1.9.0", when_locked="queue")

    _end(newer["id"], RunStatus.FAILED)

    assert _status(older["id"]) == RunStatus.QUEUED


def test_a_waiting_rollback_is_never_superseded(demo, history, sent):
    history.deploy("test", "1.0.0")
    current = history.deploy("test", "2.0.0")
    holder = _deploy(demo, "2.0.1", check=False)
    rollback = _deploy(
        demo,
        "1.0.0",
        rollback_of=current.pk,
        reason="2.0.0 breaks the header",
        when_locked="queue",
    )
    assert rollback["status"] == "waiting"

    _end(holder["id"])

    assert _status(rollback["id"]) == RunStatus.QUEUED


def test_a_lock_of_the_environment_keeps_the_line_waiting_with_its_reason(demo, test_env, sent):
    first = _deploy(demo, "1.0.0")
    second = _deploy(demo, "1.1.0", when_locked="queue")
    lock = EnvironmentLock.objects.create(
        environment=test_env,
        reason="database migration",
        expires_at=timezone.now() + timedelta(hours=1),
        created_by=demo.ops,
        created_by_name="ops",
    )

    _end(first["id"])

    run = Run.objects.get(pk=second["id"])
    assert run.status == RunStatus.WAITING
    detail = api_client(demo.dev).get(f"/api/v1/runs/{second['id']}/").json()
    assert detail["waiting"]["waiting_for"] is None
    assert detail["waiting"]["reason"].startswith("Held: ")
    assert "database migration" in detail["waiting"]["reason"]

    lock.delete()
    runs_reap()  # the reaper's pass moves a line whose lock freed without a word

    assert _status(second["id"]) == RunStatus.QUEUED
    assert sent() == [first["id"], second["id"]]


def test_a_rule_that_no_longer_holds_when_its_turn_comes_ends_it_unstarted(demo, sent):
    first = _deploy(demo, "1.0.0")
    second = _deploy(demo, "1.1.0", when_locked="queue")
    third = _deploy(demo, "1.2.0", when_locked="queue")
    demo.dev.is_active = False  # left the company meanwhile
    demo.dev.save()

    _end(first["id"])

    for run_id in (second["id"], third["id"]):
        run = Run.objects.get(pk=run_id)
        assert run.status == RunStatus.FAILED
        assert run.error == "Not started: dev cannot act any more: nothing was started."
    assert sent() == [first["id"]]


def test_a_right_withdrawn_while_it_waited_ends_it_unstarted(demo, sent):
    first = _deploy(demo, "1.0.0")
    second = _deploy(demo, "1.1.0", when_locked="queue")
    Grant.objects.filter(team__memberships__user=demo.dev).delete()

    _end(first["id"])

    run = Run.objects.get(pk=second["id"])
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("Not started: ")


def test_a_waiting_run_can_be_canceled_and_the_line_closes_up(demo, sent):
    first = _deploy(demo, "1.0.0")
    second = _deploy(demo, "1.1.0", when_locked="queue")
    third = _deploy(demo, "1.2.0", when_locked="queue")

    response = api_client(demo.dev).post(f"/api/v1/runs/{second['id']}/cancel/")

    assert response.status_code == 202, response.content
    assert response.json()["status"] == "canceled"
    detail = api_client(demo.dev).get(f"/api/v1/runs/{third['id']}/").json()
    assert detail["waiting"]["position"] == 1
    _end(first["id"])
    assert _status(third["id"]) == RunStatus.QUEUED


def test_a_new_request_that_refuses_does_not_jump_the_line(demo, sent):
    first = _deploy(demo, "1.0.0")
    second = _deploy(demo, "1.1.0", when_locked="queue")
    # The lock is free for a moment, the line not moved yet (as between two processes).
    Run.objects.filter(pk=first["id"]).update(status=RunStatus.SUCCESSFUL)

    response = api_launch(api_client(demo.dev), "test", "1.2.0")

    assert response.status_code == 409
    assert response.json()["detail"] == (
        "1 run of hello-web waits in line on Test for the deploy lock. Ask to queue yours "
        "(when_locked: queue), or wait for them."
    )
    # Asking to queue, it goes behind; the line it joined moves on (the lock was free).
    queued = api_launch(api_client(demo.dev), "test", "1.2.0", when_locked="queue").json()
    assert _status(second["id"]) == RunStatus.QUEUED
    assert queued["status"] == "waiting"
    assert queued["waiting"]["waiting_for"] == second["id"]


def test_a_verification_never_waits(demo, history, sent):
    history.deploy("test", "1.0.0")
    _deploy(demo, "1.1.0")

    response = api_launch(api_client(demo.dev), "test", action=demo.smoke, when_locked="queue")

    assert response.status_code == 409


def test_a_dry_run_neither_waits_nor_holds_the_line(demo, sent):
    first = _deploy(demo, "1.0.0")

    dry = _deploy(demo, "1.1.0", check=True, when_locked="queue")

    assert dry["status"] == "queued"
    assert sent() == [first["id"], dry["id"]]


def test_the_verification_a_deploy_asked_for_goes_before_the_line(demo, sent):
    first = _deploy(demo, "1.0.0", verify=True)
    second = _deploy(demo, "1.1.0", when_locked="queue")

    _end(first["id"])

    assert _status(second["id"]) == RunStatus.WAITING  # its verification first
    (verification,) = services.run_follow_up(run=Run.objects.get(pk=first["id"]))
    assert verification.status == RunStatus.QUEUED
    assert _status(second["id"]) == RunStatus.WAITING

    _end(verification.pk)

    assert _status(second["id"]) == RunStatus.QUEUED


def test_the_run_page_says_where_a_waiting_run_stands(demo, sent):
    first = _deploy(demo, "1.0.0")
    second = _deploy(demo, "1.1.0", when_locked="queue")

    page = page_client(demo.dev).get(f"/runs/{second['id']}/")

    assert page.status_code == 200
    text = page.content.decode()
    assert "Waiting" in text
    assert "1st in line" in text
    assert f"Waits for run #{first['id']} (Deploy, queued) to end." in text


def test_a_waiting_run_has_a_place_in_the_runs_list_filter(demo, sent):
    _deploy(demo, "1.0.0")
    second = _deploy(demo, "1.1.0", when_locked="queue")

    listed = api_client(demo.dev).get("/api/v1/runs/?status=waiting").json()

    assert [run["id"] for run in listed["results"]] == [second["id"]]


def test_a_launch_through_the_services_may_queue(demo, sent):
    first = launch(demo.dev, demo.deploy, demo.envs["test"], {"version": "1.0.0"})
    second = launch(
        demo.dev, demo.deploy, demo.envs["test"], {"version": "1.1.0"}, when_locked="queue"
    )

    assert second.status == RunStatus.WAITING
    assert services.run_wait_state(second).holder == first


FORM_URL = "/services/hello-web/deploy/{}/"


def test_the_run_form_offers_to_wait_in_line_as_the_environment_says(demo, test_env, sent):
    page = page_client(demo.dev).get(FORM_URL.format("test"))
    assert 'name="pushbutton_queue" value="1" aria' in page.content.decode()  # not checked

    test_env.when_locked = WhenLocked.QUEUE
    test_env.save()
    page = page_client(demo.dev).get(FORM_URL.format("test"))
    assert 'name="pushbutton_queue" value="1" checked' in page.content.decode()


def test_a_person_ticking_wait_in_line_gets_a_waiting_run(demo, sent):
    first = _deploy(demo, "1.0.0")
    client = page_client(demo.dev)

    refused = client.post(FORM_URL.format("test"), {"version": "1.1.0"})
    assert refused.status_code == 409
    posted = client.post(FORM_URL.format("test"), {"version": "1.1.0", "pushbutton_queue": "1"})

    run = Run.objects.exclude(pk=first["id"]).get()
    assert posted.status_code == 302
    assert posted["Location"] == f"/runs/{run.pk}/"
    assert run.status == RunStatus.WAITING
