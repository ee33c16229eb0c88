"""/metrics: who may read it, and that the figures Prometheus reads are those of the runs,
refusals and audit checks that happened (parsed with prometheus_client's own parser)."""

from datetime import timedelta
from unittest import mock

import pytest
from django.conf import settings
from django.test import Client, override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from apps.accounts.models import Right, Team
from apps.audit.checkpoints import audit_checkpoint_create
from apps.audit.verification import audit_verify
from apps.catalog.parameters import ParameterError
from apps.insights.metrics import metrics_kept_clear
from apps.runs.constants import RunStatus
from apps.runs.services import LaunchRefused
from tests.conftest import worker_row
from tests.factories import ActionFactory, EnvironmentFactory, GrantFactory, RunFactory
from tests.runs.helpers import launch, queue_held, wait_final

pytestmark = pytest.mark.django_db

TOKEN = "s3cret-metrics-token"


@pytest.fixture(autouse=True)
def _sums_of_this_test_s_database():
    """What the collector added up and kept belongs to the database it read."""
    metrics_kept_clear()
    yield
    metrics_kept_clear()


def scrape(client: Client | None = None, **extra) -> dict:
    """GET /metrics with the token; {(sample name, frozen labels): value}."""
    client = client or Client(headers={"Authorization": f"Bearer {TOKEN}"})
    with override_settings(METRICS_TOKEN=TOKEN):
        response = client.get("/metrics", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict, name: str, **labels) -> float | None:
    return samples.get((name, frozenset(labels.items())))


# --- who may read it -----------------------------------------------------------------
def test_it_is_refused_to_everyone_when_nothing_is_configured():
    response = Client().get("/metrics", headers={"Authorization": "Bearer anything"})

    assert response.status_code == 403
    assert b"Metrics are off: set METRICS_TOKEN or METRICS_ALLOWED_IPS" in response.content


@override_settings(METRICS_TOKEN=TOKEN)
def test_the_token_lets_prometheus_in_and_nothing_else_does():
    assert Client(headers={"Authorization": f"Bearer {TOKEN}"}).get("/metrics").status_code == 200

    missing = Client().get("/metrics")
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"A bearer token is needed" in missing.content
    wrong = Client(headers={"Authorization": f"Bearer {TOKEN}x"}).get("/metrics")
    assert wrong.status_code == 401
    assert b"The bearer token is wrong" in wrong.content
    # The token is no API token, nor is an API token this one.
    assert Client(headers={"Authorization": f"Token {TOKEN}"}).get("/metrics").status_code == 401
    assert b"pushbutton_" not in missing.content + wrong.content


@override_settings(METRICS_ALLOWED_IPS=["10.20.0.0/16", "2001:db8::1"])
def test_an_allowed_address_reads_it_and_another_is_refused():
    assert Client(REMOTE_ADDR="10.20.3.4").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="2001:db8::1").get("/metrics").status_code == 200
    # An IPv4 client of a dual-stack socket.
    assert Client(REMOTE_ADDR="::ffff:10.20.3.4").get("/metrics").status_code == 200

    refused = Client(REMOTE_ADDR="10.21.0.1").get("/metrics")
    assert refused.status_code == 403
    assert b"This address may not read the metrics" in refused.content
    # A forwarded header is anybody's to write: only the TCP peer counts.
    spoofed = Client(REMOTE_ADDR="192.0.2.7", HTTP_X_FORWARDED_FOR="10.20.3.4")
    assert spoofed.get("/metrics").status_code == 403
    assert Client(REMOTE_ADDR="10.20.3.4").post("/metrics").status_code == 405


def test_a_malformed_allow_list_stops_the_portal_with_the_reason(monkeypatch):
    import importlib

    from django.core.exceptions import ImproperlyConfigured

    import portal.settings

    monkeypatch.setenv("METRICS_ALLOWED_IPS", "10.0.0.0/8,10.0.0.300")
    with pytest.raises(ImproperlyConfigured, match=r"METRICS_ALLOWED_IPS: .*10\.0\.0\.300"):
        importlib.reload(portal.settings)
    monkeypatch.delenv("METRICS_ALLOWED_IPS")
    importlib.reload(portal.settings)


# --- what it shows -----------------------------------------------------------------------
def test_queues_show_their_runs_and_how_long_the_oldest_has_been_there(local_env):
    production = EnvironmentFactory(slug="production", queue="runs-production")
    EnvironmentFactory(slug="qa", queue="runs-qa")  # nothing there
    now = timezone.now()
    for minutes in (3, 10):
        RunFactory(
            environment=production,
            status=RunStatus.QUEUED,
            created_at=now - timedelta(minutes=minutes + 60),
            queued_at=now - timedelta(minutes=minutes),  # it waited in the deploy queue first
        )
    two_hours_ago = now - timedelta(hours=2)
    RunFactory(environment=production, status=RunStatus.WAITING, created_at=two_hours_ago)
    RunFactory(environment=production, status=RunStatus.RUNNING)

    samples = scrape()

    assert value(samples, "pushbutton_queue_runs", queue="runs-production", status="queued") == 2
    assert value(samples, "pushbutton_queue_runs", queue="runs-production", status="waiting") == 1
    assert value(samples, "pushbutton_queue_runs", queue="runs-qa", status="queued") == 0
    age = "pushbutton_queue_oldest_seconds"
    # Since it was sent to the queue, not since it was requested.
    assert 600 <= value(samples, age, queue="runs-production", status="queued") < 660
    assert 7200 <= value(samples, age, queue="runs-production", status="waiting") < 7260
    assert value(samples, age, queue="runs-qa", status="queued") == 0


def test_runs_are_counted_by_service_environment_and_status(local_env):
    action = ActionFactory(environments=[local_env])
    for status in (RunStatus.SUCCESSFUL, RunStatus.SUCCESSFUL, RunStatus.FAILED):
        RunFactory(action=action, service=action.service, environment=local_env, status=status)

    samples = scrape()

    labels = {"service": action.service.slug, "environment": "local"}
    assert value(samples, "pushbutton_runs", status="successful", **labels) == 2
    assert value(samples, "pushbutton_runs", status="failed", **labels) == 1
    assert value(samples, "pushbutton_runs", status="running", **labels) is None


def test_live_workers_are_counted_per_queue(local_env):
    EnvironmentFactory(slug="production", queue="runs-production")
    EnvironmentFactory(slug="qa", queue="runs-qa")
    worker_row("runs-production", hostname="pushbutton-runs-production@prod1")
    worker_row("runs-production", "runs-qa", hostname="pushbutton@old", seen_ago=600)  # silent
    worker_row("runs-qa", hostname="pushbutton@gone", stopped_at=timezone.now())
    worker_row("runs-other", hostname="pushbutton@spare")  # a queue no environment names

    samples = scrape()

    live = "pushbutton_queue_live_workers"
    assert value(samples, live, queue="runs-production") == 1
    assert value(samples, live, queue="runs-qa") == 0
    assert value(samples, live, queue="runs-other") == 1
    # The session's queue: its stand-in row, and the real session worker's when one runs.
    assert value(samples, live, queue=settings.CELERY_TASK_DEFAULT_QUEUE) >= 1
    assert value(samples, live, queue=settings.CELERY_HOUSEKEEPING_QUEUE) >= 1


def test_runs_that_settle_are_counted_once_however_often_it_is_scraped(local_env):
    action = ActionFactory(environments=[local_env])
    now = timezone.now()
    day_ago = now - timedelta(days=1)

    def run(status, **fields):
        return RunFactory(action=action, environment=local_env, status=status, **fields)

    run(RunStatus.SUCCESSFUL, started_at=day_ago - timedelta(seconds=30), finished_at=day_ago)
    going = run(RunStatus.RUNNING, started_at=now - timedelta(seconds=10))
    labels = {"service": action.service.slug, "environment": "local"}
    histogram = {"environment": "local", "kind": "deploy"}

    first = scrape()  # adds up the settled runs and keeps the sums
    going.status, going.finished_at = RunStatus.SUCCESSFUL, timezone.now()
    going.save()
    second = scrape()  # the settled ones from the sums kept, the one just ended read anew
    with mock.patch("apps.insights.metrics.timezone.now", return_value=now + timedelta(hours=1)):
        later = scrape()  # the one that ended has settled since: added to the sums kept
    # One more, ended an hour later (as the clock then says), settled at the next scrape.
    an_hour_on = now + timedelta(hours=1)
    run(RunStatus.FAILED, started_at=an_hour_on, finished_at=an_hour_on + timedelta(minutes=2))
    with mock.patch("apps.insights.metrics.timezone.now", return_value=now + timedelta(hours=2)):
        last = scrape()

    assert value(first, "pushbutton_runs", status="successful", **labels) == 1
    assert value(first, "pushbutton_runs", status="running", **labels) == 1
    assert value(first, "pushbutton_run_duration_seconds_count", **histogram) == 1
    for samples in (second, later):
        assert value(samples, "pushbutton_runs", status="successful", **labels) == 2
        assert value(samples, "pushbutton_runs", status="running", **labels) is None
        assert value(samples, "pushbutton_run_duration_seconds_count", **histogram) == 2
        assert value(samples, "pushbutton_run_duration_seconds_bucket", le="30.0", **histogram) == 2
    assert value(last, "pushbutton_runs", status="successful", **labels) == 2
    assert value(last, "pushbutton_runs", status="failed", **labels) == 1
    assert value(last, "pushbutton_run_duration_seconds_count", **histogram) == 3
    assert value(last, "pushbutton_run_duration_seconds_bucket", le="60.0", **histogram) == 2
    assert value(last, "pushbutton_run_duration_seconds_sum", **histogram) == pytest.approx(
        30 + (going.finished_at - going.started_at).total_seconds() + 120, abs=0.01
    )  # SQLite's date arithmetic counts milliseconds


def refusals(samples: dict) -> dict[str, float]:
    return {
        dict(labels)["reason"]: count
        for (name, labels), count in samples.items()
        if name == "pushbutton_launches_refused_total"
    }


def test_refused_launches_are_counted_by_reason(dev, local_env):
    action = ActionFactory(
        environments=[local_env], form=[{"name": "version", "type": "string", "required": True}]
    )
    elsewhere = EnvironmentFactory(slug="elsewhere")
    nobody_listens = EnvironmentFactory(slug="dark", queue="runs-dark")
    action.environments.add(nobody_listens)
    GrantFactory(
        team=Team.objects.get(slug="developers"), environment=nobody_listens, right=Right.RUN
    )
    with queue_held():
        launch(dev, action, local_env, {"version": "1"})  # holds the deploy lock
        for _ in range(2):
            with pytest.raises(LaunchRefused):
                launch(dev, action, local_env, {"version": "2"})
        before = refusals(scrape())  # counted, and kept: later scrapes add only new rows
        with pytest.raises(LaunchRefused):
            launch(dev, action, elsewhere, {"version": "1"})  # not offered there
        with pytest.raises(ParameterError):
            launch(dev, action, local_env, {"version": "1", "unknown": "x"})
        with pytest.raises(LaunchRefused):
            launch(dev, action, nobody_listens, {"version": "1"})

    refused = refusals(scrape())

    assert before["locked"] == 2 and sum(before.values()) == 2
    assert refused["locked"] == 2
    assert refused["forbidden"] == 1
    assert refused["parameters"] == 1
    assert refused["no_worker"] == 1
    assert refused["other"] == 0
    assert sum(refused.values()) == 5


def test_the_audit_chain_s_last_verification_and_checkpoint_show_with_their_age(dev):
    samples = scrape()
    assert value(samples, "pushbutton_audit_verification_ok") is None  # never verified yet

    report = audit_verify()
    checkpoint = audit_checkpoint_create()
    samples = scrape()

    assert report.ok
    assert value(samples, "pushbutton_audit_verification_ok") == 1
    assert 0 <= value(samples, "pushbutton_audit_verification_age_seconds") < 60
    assert value(samples, "pushbutton_audit_checkpoint_timestamp_seconds") == (
        checkpoint.signed_at.timestamp()
    )
    assert 0 <= value(samples, "pushbutton_audit_checkpoint_age_seconds") < 60
    assert value(samples, "pushbutton_audit_checkpoint_publish_errors") == 0


# --- real runs: durations and the ingest of their events ------------------------------
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_real_runs_show_in_the_duration_histogram_and_the_ingest_figures(
    celery_worker, test_playbooks, local_env, dev
):
    action = ActionFactory(
        playbook_version=test_playbooks["many_events"],
        environments=[local_env],
        kind="deploy",
        form=[{"name": "count", "type": "integer", "default": 60}],
    )
    run = wait_final(launch(dev, action, local_env, {"count": 60}))
    assert run.status == RunStatus.SUCCESSFUL, run.error
    # A long one beside it (a row: two hours of a real run would be too long to wait).
    ended = timezone.now()
    RunFactory(
        action=action,
        service=action.service,
        environment=local_env,
        status=RunStatus.FAILED,
        started_at=ended - timedelta(hours=2),
        finished_at=ended,
    )

    samples = scrape()

    labels = {"environment": "local", "kind": "deploy"}
    took = (run.finished_at - run.started_at).total_seconds()
    assert 0 < took < 60
    assert value(samples, "pushbutton_run_duration_seconds_count", **labels) == 2
    assert value(samples, "pushbutton_run_duration_seconds_sum", **labels) == pytest.approx(
        took + 7200, abs=0.01
    )
    assert value(samples, "pushbutton_run_duration_seconds_bucket", le="+Inf", **labels) == 2
    assert value(samples, "pushbutton_run_duration_seconds_bucket", le="3600.0", **labels) == 1
    assert value(samples, "pushbutton_run_duration_seconds_bucket", le="14400.0", **labels) == 2
    below = value(samples, "pushbutton_run_duration_seconds_bucket", le="5.0", **labels)
    assert below == (1 if took <= 5 else 0)
    assert (
        value(samples, "pushbutton_runs", service=action.service.slug, environment="local",
              status="successful")
        == 1
    )  # fmt: skip
    run.refresh_from_db()
    assert run.event_count >= 60
    assert run.ingest_batches >= 1 and run.ingest_seconds > 0
    assert value(samples, "pushbutton_event_ingest_seconds_count", environment="local") == (
        run.ingest_batches
    )
    assert value(samples, "pushbutton_event_ingest_seconds_sum", environment="local") == (
        pytest.approx(run.ingest_seconds)
    )
    assert value(samples, "pushbutton_run_events_total", environment="local") == run.event_count
