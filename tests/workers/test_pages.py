"""The workers page and GET /api/v1/workers/: what Ops and auditors see, and who may."""

import pytest
from django.conf import settings

from apps.audit.constants import Outcome
from apps.audit.models import AuditEvent
from apps.runs.constants import RunStatus
from apps.workers.services import worker_stopped
from tests.clients import api_client, page_client
from tests.conftest import worker_row
from tests.factories import EnvironmentFactory, RunFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet(demo):
    """Production's own queue with one live worker running a run, a silent worker on
    QA's queue, and a stopped one; two production runs waiting."""
    production, qa = demo.envs["production"], demo.envs["qa"]
    production.queue, qa.queue = "production", "qa"
    production.save()
    qa.save()
    live = worker_row(
        "production", hostname="prod1@inside", pushbutton_version="0.1.0",
        ansible_core_version="2.19.4",
    )  # fmt: skip
    silent = worker_row("qa", hostname="qa1@lab", seen_ago=600)
    stopped = worker_row("qa", hostname="qa2@lab")
    worker_stopped(hostname="qa2@lab")
    running = RunFactory(
        action=demo.deploy, environment=production, status=RunStatus.RUNNING,
        worker="prod1@inside",
    )  # fmt: skip
    # A dry run takes no deploy lock; a deploy waits in line behind the running one.
    RunFactory(action=demo.smoke, environment=production, check_mode=True)
    RunFactory(action=demo.deploy, environment=production, status=RunStatus.WAITING)
    return live, silent, stopped, running


def test_ops_see_each_worker_and_each_environments_queue(demo, fleet):
    _, silent, _, running = fleet

    page = page_client(demo.ops).get("/workers/")

    assert page.status_code == 200
    html = page.content.decode()
    assert 'href="/workers/"' in html  # in the navigation
    row = html.split('data-worker="prod1@inside"')[1].split("</tr>")[0]
    assert ">live<" in row
    assert "<code>production</code>" in row
    assert f"#{running.pk}</a> Hello Web on Production" in row.replace("hello-web", "Hello Web")
    assert "Pushbutton 0.1.0, ansible-core 2.19.4" in row
    silent_row = html.split('data-worker="qa1@lab"')[1].split("</tr>")[0]
    assert "silent since" in silent_row
    assert silent.last_seen_at.strftime("%Y-%m-%d %H:%M:%S") in silent_row
    assert "stopped" in html.split('data-worker="qa2@lab"')[1].split("</tr>")[0]
    qa_row = html.split('data-environment="qa"')[1].split("</tr>")[0]
    assert "no live worker" in qa_row
    production_row = html.split('data-environment="production"')[1].split("</tr>")[0]
    assert "no live worker" not in production_row
    assert "<td>2</td>" in production_row  # runs waiting: one queued, one in the deploy queue
    housekeeping = html.split('<p class="housekeeping')[1].split("</p>")[0]
    assert f"<code>{settings.CELERY_HOUSEKEEPING_QUEUE}</code>, 1 live worker." in housekeeping


def test_the_api_says_the_same_to_an_auditor(demo, fleet):
    running = fleet[-1]

    response = api_client(demo.auditor).get("/api/v1/workers/")

    assert response.status_code == 200
    body = response.json()
    workers = {w["hostname"]: w for w in body["workers"]}
    assert workers["prod1@inside"]["state"] == "live"
    assert workers["prod1@inside"]["queues"] == ["production"]
    assert workers["prod1@inside"]["runs"][0]["id"] == running.pk
    assert workers["prod1@inside"]["ansible_core_version"] == "2.19.4"
    assert workers["qa1@lab"]["state"] == "silent"
    assert workers["qa1@lab"]["silent_since"] is not None
    assert workers["qa2@lab"]["state"] == "stopped"
    assert [w["state"] for w in body["workers"]][:2] == ["live", "live"]  # live first
    queues = {e["environment"]: e for e in body["environments"]}
    assert queues["production"] == {
        "environment": "production", "queue": "production", "live": True, "live_workers": 1,
        "waiting": 2,
    }  # fmt: skip
    assert queues["qa"]["live"] is False
    assert queues["test"]["queue"] == settings.CELERY_TASK_DEFAULT_QUEUE
    assert queues["test"]["live"] is True
    assert body["housekeeping"] == {
        "queue": settings.CELERY_HOUSEKEEPING_QUEUE, "live_workers": 1
    }  # fmt: skip


@pytest.mark.no_worker_row
def test_without_a_housekeeping_worker_the_page_says_what_stops(demo):
    worker_row(settings.CELERY_TASK_DEFAULT_QUEUE)  # the runs' worker only

    html = page_client(demo.ops).get("/workers/").content.decode()

    housekeeping = html.split('<p class="housekeeping')[1].split("</p>")[0]
    assert "no live worker" in housekeeping
    assert "lost runs are not found, schedules do not fire" in housekeeping
    body = api_client(demo.auditor).get("/api/v1/workers/").json()
    assert body["housekeeping"]["live_workers"] == 0


def test_developers_may_not_see_the_workers_and_are_told_why(demo):
    page = page_client(demo.dev).get("/workers/")
    assert page.status_code == 403
    assert "Only Ops and auditors see the workers" in page.content.decode()
    assert 'href="/workers/"' not in page_client(demo.dev).get("/").content.decode()

    response = api_client(demo.dev).get("/api/v1/workers/")
    assert response.status_code == 403
    assert "Only Ops and auditors" in response.json()["detail"]
    assert AuditEvent.objects.filter(outcome=Outcome.REFUSED, actor_name="dev").count() == 2


def test_where_environments_are_listed_one_with_no_live_worker_says_so(demo):
    EnvironmentFactory(slug="edge", name="Edge", queue="edge-only")
    qa = demo.envs["qa"]
    qa.queue = "nobody-here"
    qa.save()

    matrix = page_client(demo.dev).get("/what-runs-where/").content.decode()
    header = matrix.split('<th scope="col" data-environment="qa">')[1].split("</th>")[0]
    assert "no live worker" in header
    test_header = matrix.split('<th scope="col" data-environment="test">')[1].split("</th>")[0]
    assert "no live worker" not in test_header

    catalog = page_client(demo.dev).get("/").content.decode()

    def catalog_row(slug):
        return catalog.split(f'<tr data-environment="{slug}">')[1].split("</th>")[0]

    assert "no live worker" in catalog_row("qa")
    assert "no live worker" not in catalog_row("test")

    service = page_client(demo.dev).get("/services/hello-web/").content.decode()
    assert "no live worker" in service.split('id="env-qa-title"')[1].split("</h2>")[0]
    assert "no live worker" not in service.split('id="env-test-title"')[1].split("</h2>")[0]

    environments = {e["slug"]: e for e in api_client(demo.dev).get("/api/v1/environments/").json()}
    assert environments["qa"]["worker_live"] is False
    assert environments["qa"]["queue"] == "nobody-here"
    assert environments["test"]["worker_live"] is True
