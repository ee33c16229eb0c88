"""Runs that survive faults: a worker killed mid-run, the broker down at launch, the
database connection dropped under the events, the action changed mid-run."""

import os
import signal
import threading
import time
import uuid
from types import SimpleNamespace
from unittest import mock

import psutil
import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.db.models import F

from apps.audit.constants import Via
from apps.audit.models import AuditEvent
from apps.catalog.services import action_delete
from apps.environments.constants import CredentialKind
from apps.environments.services import credential_create, credential_delete
from apps.runs.constants import RunStatus
from apps.runs.events import MASK, EventSink
from apps.runs.models import Run, RunEvent
from apps.runs.services import checks
from portal.celery import app as celery_app
from tests.clients import api_client, api_launch, page_client
from tests.conftest import free_port, wait_for
from tests.factories import ActionFactory, RunFactory
from tests.runs.helpers import launch, queue_held, start_worker, stop_worker, wait_final

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


# --- a worker killed mid-run ----------------------------------------------------------
@pytest.fixture
def victim(test_playbooks, local_env, dev, tmp_path):
    """A worker of its own, on a queue of its own, running a run that sleeps; it
    beats every second, so a silence is seen soon."""
    queue = f"victim-{uuid.uuid4().hex[:8]}"
    local_env.queue = queue
    local_env.save()
    name = f"victim-{uuid.uuid4().hex[:8]}@%h"
    worker = start_worker(
        tmp_path / "victim.log", name=name, queue=queue, RUN_HEARTBEAT_SECONDS="1"
    )
    workers = [worker]
    action = ActionFactory(
        playbook_version=test_playbooks["sleep"],
        environments=[local_env],
        form=[{"name": "seconds", "type": "integer"}],
    )
    seconds = 300 + os.getpid() % 600  # a sleep no other test has
    run = launch(dev, action, local_env, {"seconds": seconds})

    def sleeping():
        return [
            p
            for p in psutil.process_iter(["cmdline"])
            if p.info["cmdline"] == ["sleep", str(seconds)]
        ]

    wait_for(sleeping, timeout=90, message="the playbook's sleep never started")
    wait_for(
        lambda: Run.objects.filter(pk=run.pk, heartbeat_at__gt=F("started_at")).exists(),
        timeout=30,
        message="the run never beat",
    )
    run.refresh_from_db()
    yield SimpleNamespace(
        worker=worker, workers=workers, name=name, queue=queue, run=run, action=action,
        sleeping=sleeping, log=tmp_path / "victim.log",
    )  # fmt: skip
    for each in workers:
        stop_worker(each)


def _sigkill(worker) -> None:
    """What the OOM killer or `kill -9` does: the worker and its pool, at once; the
    playbook's processes (sessions of their own) are left behind."""
    os.killpg(worker.process.pid, signal.SIGKILL)
    worker.process.wait()


def _assert_cleaned_up(victim, dev) -> None:
    run = victim.run
    wait_for(lambda: not victim.sleeping(), timeout=30, message="the run's sleep was left")
    wait_for(
        lambda: not list(settings.RUNS_TMP_DIR.glob(f"run-{run.pk}-*")),
        timeout=30,
        message="its private dir was left",
    )
    # The lock went with it: the next deploy is accepted.
    with queue_held():
        again = launch(dev, victim.action, run.environment, {"seconds": 1})
    assert again.status == RunStatus.QUEUED
    row = AuditEvent.objects.filter(verb="run.finished", object_id=str(run.pk)).get()
    assert row.details["status"] == RunStatus.LOST


def test_a_killed_worker_s_run_is_reaped_as_lost_by_beat(victim, dev, tmp_path):
    assert victim.run.status == RunStatus.RUNNING
    _sigkill(victim.worker)
    killed_at = time.monotonic()
    reaper_queue = f"reaper-{uuid.uuid4().hex[:8]}"
    victim.workers.append(
        start_worker(
            tmp_path / "reaper.log",
            name=f"reaper-{uuid.uuid4().hex[:8]}@%h",
            queue=reaper_queue,
            beat=True,
            # Beat sends the reaper to this worker's own queue, every second; a run
            # silent for 3 s (its heartbeat is every second) is lost.
            CELERY_HOUSEKEEPING_QUEUE=reaper_queue,
            RUN_REAP_SECONDS="1",
            RUN_LOST_AFTER_SECONDS="3",
        )
    )

    run = wait_final(victim.run, timeout=60)

    assert run.status == RunStatus.LOST
    assert time.monotonic() - killed_at < 60
    assert "no heartbeat" in run.error
    assert run.secret_credentials == "" and run.secret_parameters == ""
    _assert_cleaned_up(victim, dev)


def test_a_worker_restarted_after_a_kill_marks_its_runs_lost_at_once(victim, dev, tmp_path):
    _sigkill(victim.worker)

    victim.workers.append(
        start_worker(victim.log, name=victim.name, queue=victim.queue, RUN_HEARTBEAT_SECONDS="1")
    )

    victim.run.refresh_from_db()  # done by the time it says ready
    assert victim.run.status == RunStatus.LOST
    assert "stopped while the run was going" in victim.run.error
    _assert_cleaned_up(victim, dev)


# --- the broker down at launch -----------------------------------------------------------
def broker_gone_url() -> str:
    """The broker of CELERY_BROKER_URL (Redis, RabbitMQ) on a loopback port nothing
    listens on. The embedded filesystem broker cannot be down: a Redis that is not
    there stands in for it."""
    scheme = settings.CELERY_BROKER_URL.partition("://")[0]
    port = free_port()
    if scheme.startswith(("amqp", "pyamqp")):
        return f"{scheme}://guest:guest@127.0.0.1:{port}//"
    return f"{scheme if scheme.startswith('redis') else 'redis'}://127.0.0.1:{port}/0"


@pytest.fixture
def broker_down():
    """The portal's Celery app pointed at a loopback port nothing listens on."""

    def reset_pools():
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    # What the portal sends through (CELERY_BROKER_URL, when set, wins over broker_url).
    saved = celery_app.conf.get("broker_write_url")
    celery_app.conf.broker_write_url = broker_gone_url()
    reset_pools()
    yield
    celery_app.conf.broker_write_url = saved
    reset_pools()


def test_with_the_broker_down_a_launch_is_refused_with_503_and_nothing_is_created(
    broker_down, local_env, dev
):
    action = ActionFactory(environments=[local_env])

    started = time.monotonic()
    response = api_launch(api_client(dev), local_env, action=action)

    assert response.status_code == 503
    assert "task queue" in response.json()["detail"]
    assert time.monotonic() - started < 10
    assert not Run.objects.exists()
    refusal = AuditEvent.objects.get(verb="run.refused")
    assert "task queue" in refusal.details["reason"]


def test_a_broker_lost_between_check_and_enqueue_leaves_no_run_queued(broker_down, local_env, dev):
    action = ActionFactory(environments=[local_env])

    with mock.patch.object(checks, "queue_unreachable_reason", return_value=None):
        response = api_launch(api_client(dev), local_env, action=action)

    assert response.status_code == 503
    run = Run.objects.get()
    assert run.status == RunStatus.FAILED
    assert run.started_at is None
    assert run.error.startswith("Never started:")
    assert not Run.objects.filter(status=RunStatus.QUEUED).exists()


# --- the database connection dropped under the events -------------------------------------
@pytest.fixture
def postgres():
    if connection.vendor != "postgresql":
        pytest.skip("about PostgreSQL's connections: runs on PostgreSQL (CI's second run)")
    db = connection.settings_dict
    with psycopg.connect(
        dbname=db["NAME"],
        user=db["USER"],
        password=db["PASSWORD"] or None,
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        autocommit=True,
    ) as admin:
        yield admin


def _event(counter):
    return {
        "counter": counter,
        "event": "runner_on_ok",
        "stdout": f"ok: item {counter}",
        "start_line": counter - 1,
        "end_line": counter,
        "event_data": {"host": "web1", "task": "Install"},
    }


def test_events_are_stored_once_across_a_dropped_connection(postgres):
    run = RunFactory()
    sink = EventSink(run.pk, batch_size=10_000, flush_seconds=3600)
    for counter in range(1, 51):
        sink.add(_event(counter))
    sink.flush()
    # The connection drops, and a batch that had reached the database is sent again.
    connection.ensure_connection()
    postgres.execute("SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid])
    for counter in range(41, 101):
        sink.add(_event(counter))

    sink.flush()

    counters = list(RunEvent.objects.filter(run=run).values_list("counter", flat=True))
    assert counters == list(range(1, 101))


ITEMS = 1000


def test_a_run_keeps_every_event_while_its_connections_are_dropped(
    celery_worker, postgres, test_playbooks, local_env, dev
):
    action = ActionFactory(
        playbook_version=test_playbooks["many_events"],
        environments=[local_env],
        form=[{"name": "count", "type": "integer"}],
    )
    connection.ensure_connection()
    ours = connection.connection.info.backend_pid
    run = launch(dev, action, local_env, {"count": ITEMS})
    wait_for(lambda: Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING).exists(), timeout=90)
    dropped = []
    stop = threading.Event()

    def drop_the_worker_s_connections():
        while not stop.wait(0.2):
            found = postgres.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid NOT IN (pg_backend_pid(), %s)",
                [connection.settings_dict["NAME"], ours],
            ).fetchall()
            dropped.extend(found)

    killer = threading.Thread(target=drop_the_worker_s_connections)
    killer.start()
    try:
        run = wait_final(run)
    finally:
        stop.set()
        killer.join()

    assert run.status == RunStatus.SUCCESSFUL, run.error
    assert dropped, "no connection was dropped"
    assert f"events of run {run.pk} failed" in celery_worker.log.read_text()  # and retried
    counters = list(RunEvent.objects.filter(run=run).values_list("counter", flat=True))
    assert counters == list(range(1, len(counters) + 1))
    assert len(counters) == run.event_count
    assert RunEvent.objects.filter(run=run, event="playbook_on_stats").exists()
    items = RunEvent.objects.filter(run=run, event="runner_item_on_ok").count()
    assert items == ITEMS


# --- Ops change the action while it runs ---------------------------------------------------
def test_a_run_finishes_with_what_it_started_with(
    celery_worker, test_playbooks, local_env, dev, ops, tmp_path
):
    go = tmp_path / "go"
    local_env.inventory["all"]["vars"] = {"go_file": str(go)}
    local_env.save()
    token = credential_create(
        name="token",
        kind=CredentialKind.SECRET_VARIABLE,
        variable="api_token",
        value=f"tok-{uuid.uuid4().hex}",
        environments=[local_env],
        acting_user=ops,
        via=Via.ADMIN,
    )
    action = ActionFactory(
        playbook_version=test_playbooks["wait_then_echo"],
        environments=[local_env],
        form=[{"name": "message", "type": "string"}],
        label="Echo",
        timeout=120,
    )
    run = launch(dev, action, local_env, {"message": "as launched"})
    wait_for(
        lambda: RunEvent.objects.filter(run=run, task="Wait for the go file").exists(), timeout=90
    )

    # Everything the run came from changes, then goes.
    action.form = [{"name": "other", "type": "integer"}]
    action.playbook_version = test_playbooks["nohosts"]
    action.timeout = 1
    action.label = "Renamed"
    action.save()
    local_env.inventory = {"nowhere": {"hosts": {}}}
    local_env.save()
    credential_delete(credential=token, acting_user=ops, via=Via.ADMIN)
    action_delete(action=action, acting_user=ops, via=Via.ADMIN)
    go.touch()
    run = wait_final(run)

    assert run.status == RunStatus.SUCCESSFUL, run.error
    assert run.action is None
    assert run.action_label == "Echo"
    output = "".join(RunEvent.objects.filter(run=run).values_list("stdout", flat=True))
    assert f"message=as launched token={MASK}" in output


def test_with_the_broker_down_the_page_says_so_with_503(broker_down, local_env, dev):
    action = ActionFactory(environments=[local_env], slug="deploy")
    client = page_client(dev)

    response = client.post(f"/services/{action.service.slug}/deploy/{local_env.slug}/", {})

    assert response.status_code == 503
    assert "task queue" in response.content.decode()
    assert not Run.objects.exists()
