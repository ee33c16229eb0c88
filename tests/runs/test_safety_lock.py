"""The deploy lock (one queued or running run per service and environment), and the
limits a run lives within. The lock is a partial unique index: these tests launch
through real, concurrent database connections (PostgreSQL in CI's second run)."""

import threading
from unittest import mock

import pytest
from django.conf import settings
from django.db import connection

from apps.audit.models import AuditEvent
from apps.runs import services
from apps.runs.constants import RunStatus
from apps.runs.models import Run
from apps.runs.services import checks
from apps.runs.tasks import run_execute
from tests.clients import api_client, api_launch, page_client
from tests.factories import ActionFactory
from tests.runs.helpers import launch, queue_held

pytestmark = pytest.mark.django_db(transaction=True)

LAUNCHERS = 8


@pytest.fixture
def no_broker_send():
    """The lock is the database's business: nothing needs to reach a worker here."""
    with queue_held() as apply_async:
        yield apply_async


def test_concurrent_launches_start_one_run_and_refuse_the_others(local_env, dev, no_broker_send):
    action = ActionFactory(environments=[local_env])
    clients = [api_client(dev) for _ in range(LAUNCHERS)]
    barrier = threading.Barrier(LAUNCHERS)
    responses = [None] * LAUNCHERS

    def launch(index):
        try:
            barrier.wait()
            responses[index] = api_launch(clients[index], local_env, action=action)
        finally:
            connection.close()  # each thread had its own connection

    threads = [threading.Thread(target=launch, args=(i,)) for i in range(LAUNCHERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [409] * (LAUNCHERS - 1), [r.content for r in responses]
    holder = Run.objects.get()
    for response in responses:
        if response.status_code == 409:
            body = response.json()
            assert f"run #{holder.pk}" in body["detail"]
            assert body["lock"]["run"] == holder.pk
            assert body["lock"]["url"] == f"/runs/{holder.pk}/"
            assert body["lock"]["requested_by"] == "dev"
    refusals = AuditEvent.objects.filter(verb="run.refused")
    assert refusals.count() == LAUNCHERS - 1
    assert {r.details["lock_held_by"] for r in refusals} == {holder.pk}
    assert no_broker_send.call_count == 1


def test_the_lock_is_the_database_s_even_past_the_check(local_env, dev, no_broker_send):
    """Two launches that both passed the early check: the index still refuses one."""
    action = ActionFactory(environments=[local_env])
    first = launch(
        user=dev,
        action=action,
        environment=local_env,
        parameters={},
    )

    with (
        mock.patch.object(checks, "lock_holder", side_effect=[None, first]),
        pytest.raises(services.LaunchRefused) as refused,
    ):
        launch(
            user=dev,
            action=action,
            environment=local_env,
            parameters={},
        )

    assert refused.value.status == 409
    assert refused.value.holder == first
    assert Run.objects.count() == 1


def test_a_dry_run_neither_waits_for_nor_takes_the_lock(local_env, dev, no_broker_send):
    action = ActionFactory(environments=[local_env])
    client = api_client(dev)
    assert api_launch(client, local_env, action=action).status_code == 201

    dry_runs = [api_launch(client, local_env, action=action, check=True) for _ in range(2)]

    assert [r.status_code for r in dry_runs] == [201, 201]
    assert api_launch(client, local_env, action=action).status_code == 409
    other_service = ActionFactory(environments=[local_env])
    assert api_launch(client, local_env, action=other_service).status_code == 201


@pytest.mark.parametrize("end", [RunStatus.SUCCESSFUL, RunStatus.FAILED, RunStatus.LOST])
def test_the_lock_is_freed_when_its_run_ends(local_env, dev, no_broker_send, end):
    action = ActionFactory(environments=[local_env])
    client = api_client(dev)
    holder = Run.objects.get(pk=api_launch(client, local_env, action=action).json()["id"])
    services.run_start(run_id=holder.pk, worker="w@host", pid=1)
    assert api_launch(client, local_env, action=action).status_code == 409

    services.run_end(run=holder, status=end)

    assert api_launch(client, local_env, action=action).status_code == 201


def test_canceling_a_queued_run_frees_the_lock(local_env, dev, no_broker_send):
    action = ActionFactory(environments=[local_env])
    client = api_client(dev)
    run_id = api_launch(client, local_env, action=action).json()["id"]

    assert client.post(f"/api/v1/runs/{run_id}/cancel/").status_code == 202

    assert api_launch(client, local_env, action=action).status_code == 201


def test_the_page_names_the_run_that_holds_the_lock(local_env, dev, no_broker_send):
    action = ActionFactory(environments=[local_env], slug="deploy")
    client = page_client(dev)
    url = f"/services/{action.service.slug}/deploy/{local_env.slug}/"
    first = client.post(url, {})
    holder = Run.objects.get()

    second = client.post(url, {})

    assert first.status_code == 302
    assert second.status_code == 409
    html = second.content.decode()
    assert f"run #{holder.pk}" in html
    assert f'href="/runs/{holder.pk}/"' in html
    assert Run.objects.count() == 1


# --- limits ---------------------------------------------------------------------------
def test_celery_limits_sit_above_the_run_timeout(local_env, dev, no_broker_send):
    action = ActionFactory(environments=[local_env], timeout=900)

    api_launch(api_client(dev), local_env, action=action)

    options = no_broker_send.call_args.kwargs
    assert 900 < options["soft_time_limit"] < options["time_limit"]
    assert options["queue"] == local_env.queue
    assert run_execute.acks_late
    assert settings.CELERY_TASK_ACKS_LATE
    assert settings.CELERY_WORKER_PREFETCH_MULTIPLIER == 1
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout")
    if visibility is not None:  # Redis and SQS redeliver what is not acknowledged in time
        assert visibility > settings.RUN_TIMEOUT_MAX + settings.RUN_HARD_TIME_LIMIT_MARGIN


def test_an_action_slower_than_the_queue_allows_is_refused(local_env, dev, no_broker_send):
    action = ActionFactory(environments=[local_env], timeout=settings.RUN_TIMEOUT_MAX + 1)

    response = api_launch(api_client(dev), local_env, action=action)

    assert response.status_code == 409
    assert "Ops must lower it" in response.json()["detail"]
    assert not Run.objects.exists()


def test_a_dead_worker_s_run_is_lost_within_a_minute_by_default():
    # The reaper runs every RUN_REAP_SECONDS and ends runs silent for RUN_LOST_AFTER_SECONDS;
    # heartbeats come every RUN_HEARTBEAT_SECONDS, so a live run is never taken for lost.
    assert settings.RUN_LOST_AFTER_SECONDS + settings.RUN_REAP_SECONDS <= 60
    assert settings.RUN_LOST_AFTER_SECONDS >= 2 * settings.RUN_HEARTBEAT_SECONDS
    entry = settings.CELERY_BEAT_SCHEDULE["runs-reap"]
    assert entry["task"] == "apps.runs.tasks.runs_reap"
    assert entry["schedule"] == settings.RUN_REAP_SECONDS
