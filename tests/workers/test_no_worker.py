"""No run waits for nobody: a launch to an environment whose queue no live worker
consumes is refused at once (503, naming the queue, audited); a run in the deploy queue
is not sent there; runs already queued there end after RUN_NO_WORKER_GRACE_SECONDS."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.audit.constants import Outcome
from apps.audit.models import AuditEvent
from apps.runs import services
from apps.runs.constants import RunStatus
from apps.runs.models import Run
from apps.runs.tasks import runs_reap
from apps.workers.models import Worker
from apps.workers.services import worker_stopped
from tests.clients import api_client, api_launch, page_client
from tests.conftest import worker_row
from tests.factories import RunFactory
from tests.runs.helpers import launch, queue_held

pytestmark = pytest.mark.django_db


@pytest.fixture
def unattended(demo):
    """The demo's test environment, its runs sent to a queue no worker consumes."""
    env = demo.envs["test"]
    env.queue = "nobody-listens"
    env.save()
    return env


def test_the_api_refuses_a_launch_no_worker_would_take(demo, unattended):
    response = api_launch(api_client(demo.dev), "test", "1.0.0")

    assert response.status_code == 503
    body = response.json()
    assert body["queue"] == "nobody-listens"
    assert "No live worker consumes queue 'nobody-listens'" in body["detail"]
    assert "Test" in body["detail"]
    assert not Run.objects.exists()
    refusal = AuditEvent.objects.get(verb="run.refused")
    assert refusal.outcome == Outcome.REFUSED
    assert refusal.actor_name == "dev"
    assert refusal.environment == "test"
    assert refusal.details["queue"] == "nobody-listens"
    assert "nobody-listens" in refusal.details["reason"]


def test_a_silent_or_stopped_worker_does_not_count(demo, unattended, settings):
    settings.WORKER_SILENT_AFTER_SECONDS = 30
    worker_row("nobody-listens", hostname="gone@lab", seen_ago=31)
    worker_row("nobody-listens", hostname="stopped@lab")
    worker_stopped(hostname="stopped@lab")
    assert api_launch(api_client(demo.dev), "test", "1.0.0").status_code == 503

    worker_row("nobody-listens", hostname="back@lab", seen_ago=29)
    assert api_launch(api_client(demo.dev), "test", "1.0.0").status_code == 201


def test_a_promotion_and_a_dry_run_are_refused_alike(demo, history):
    history.shipped("test", "1.0.0")
    qa = demo.envs["qa"]
    qa.queue = "qa-network"
    qa.save()
    client = api_client(demo.dev)

    promoted = client.post(
        "/api/v1/services/hello-web/environments/qa/promote/", {}, content_type="application/json"
    )
    dry = api_launch(client, "qa", "1.0.0", check=True)

    for response in (promoted, dry):
        assert response.status_code == 503, response.content
        assert response.json()["queue"] == "qa-network"
        assert "'qa-network'" in response.json()["detail"]
    assert AuditEvent.objects.filter(verb="run.refused", environment="qa").count() == 2


def test_the_form_says_so_before_and_after_the_press(demo, unattended):
    client = page_client(demo.dev)
    url = reverse("runs:form", args=["hello-web", "deploy", unattended.slug])

    form = client.get(url).content.decode()
    assert "No live worker consumes queue &#x27;nobody-listens&#x27;" in form
    assert "A launch here is refused until one does." in form

    posted = client.post(url, {"version": "1.0.0"})
    assert posted.status_code == 503
    alert = posted.content.decode().split('id="launch-refused"')[1].split("</div>")[0]
    assert "nobody-listens" in alert
    assert "Nothing was launched" in alert
    assert not Run.objects.exists()


def test_a_waiting_run_is_not_sent_to_a_queue_whose_worker_left(
    demo, django_capture_on_commit_callbacks
):
    env = demo.envs["test"]
    env.queue = "left-by-its-worker"  # one worker, of its own (not the session's)
    env.save()
    worker_row("left-by-its-worker", hostname="only@lab")
    with queue_held():
        first = launch(demo.dev, demo.deploy, env, {"version": "1.0.0"})
        second = launch(demo.dev, demo.deploy, env, {"version": "1.1.0"}, when_locked="queue")
        assert second.status == RunStatus.WAITING
        worker_stopped(hostname="only@lab")  # the last worker of the queue goes
        with django_capture_on_commit_callbacks(execute=True):
            services.run_end(run=first, status=RunStatus.SUCCESSFUL, rc=0)

    second.refresh_from_db()
    assert second.status == RunStatus.FAILED
    assert second.started_at is None
    assert "Not started: No live worker consumes queue 'left-by-its-worker'" in second.error
    assert not second.holds_lock


def test_queued_runs_end_after_the_grace_once_their_last_worker_is_gone(db, settings):
    settings.WORKER_SILENT_AFTER_SECONDS = 30
    settings.RUN_NO_WORKER_GRACE_SECONDS = 60
    now = timezone.now()
    # Silent for 100 s: gone since 70 s ago, past the grace.
    worker_row("gone", hostname="gone@lab", seen_ago=100)
    # Stopped 20 s ago: within the grace (a restart may bring it back).
    worker_row("restarting", hostname="restarting@lab")
    Worker.objects.filter(hostname="restarting@lab").update(stopped_at=now - timedelta(seconds=20))
    ago = now - timedelta(minutes=5)
    ended = RunFactory(queue="gone", queued_at=ago, created_at=ago)
    spared = RunFactory(queue="restarting", queued_at=ago, created_at=ago)
    # Queued only 30 s ago, after its queue lost its worker: the grace is its own too.
    late = RunFactory(queue="gone", queued_at=now - timedelta(seconds=30))
    served = RunFactory(queued_at=ago, created_at=ago)  # the session's queue, live

    runs_reap()

    for run in (ended, spared, late, served):
        run.refresh_from_db()
    assert ended.status == RunStatus.FAILED
    assert ended.error.startswith("Never started: no live worker consumes queue 'gone'")
    assert not ended.holds_lock
    assert [spared.status, late.status, served.status] == [RunStatus.QUEUED] * 3
    audit = AuditEvent.objects.get(object_type="runs.run", object_id=str(ended.pk))
    assert audit.verb == "run.finished"
    assert "no live worker consumes queue 'gone'" in audit.details["error"]

    # Once the grace is over for the restarting queue too, and nobody came back.
    Worker.objects.filter(hostname="restarting@lab").update(stopped_at=now - timedelta(seconds=61))
    runs_reap()
    spared.refresh_from_db()
    assert spared.status == RunStatus.FAILED
