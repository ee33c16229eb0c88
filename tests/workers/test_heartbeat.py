"""A real worker process announces itself: its heartbeat row, written again every
WORKER_HEARTBEAT_SECONDS (2 s in the tests, tests/environment.py), and marked stopped
when it shuts down cleanly."""

import signal
import uuid
from importlib import metadata

import pytest
from django.conf import settings

from apps.workers.models import Worker
from apps.workers.selectors import live_queues, worker_list
from tests.clients import page_client
from tests.conftest import SESSION_WORKER, wait_for
from tests.runs.helpers import start_worker, stop_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_the_worker_writes_its_heartbeat_row(celery_worker, ops):
    pid = celery_worker.process.pid
    row = wait_for(lambda: Worker.objects.filter(pid=pid).first(), timeout=15)

    assert row.hostname.startswith("test-")
    assert row.queues == [
        settings.CELERY_TASK_DEFAULT_QUEUE,
        settings.CELERY_HOUSEKEEPING_QUEUE,
    ]
    assert row.concurrency == 2
    assert row.pushbutton_version == metadata.version("pushbutton")
    assert row.ansible_core_version == metadata.version("ansible-core")
    assert row.stopped_at is None
    # It beats again, by itself.
    wait_for(
        lambda: Worker.objects.get(pk=row.pk).last_seen_at > row.last_seen_at,
        timeout=10,
        message="no second heartbeat",
    )
    # With the row every database test gets (tests/conftest.py), two consume the queue.
    assert live_queues()[settings.CELERY_TASK_DEFAULT_QUEUE] == 2
    assert [s.state for s in worker_list() if s.worker.pk == row.pk] == ["live"]

    page = page_client(ops).get("/workers/").content.decode()
    assert row.hostname in page
    assert SESSION_WORKER in page


def test_a_worker_shut_down_cleanly_is_marked_stopped(tmp_path):
    name = f"stops-{uuid.uuid4().hex[:6]}@tests"
    worker = start_worker(tmp_path / "worker.log", name=name, queue="stops-here,and-there")
    try:
        row = wait_for(lambda: Worker.objects.filter(hostname=name).first(), timeout=15)
        assert row.queues == ["and-there", "stops-here"]
        assert row.concurrency == 1
        assert live_queues().get("stops-here") == 1

        worker.process.send_signal(signal.SIGTERM)  # Celery's warm shutdown
        worker.process.wait(timeout=30)
    finally:
        stop_worker(worker)

    row.refresh_from_db()
    assert row.stopped_at is not None
    assert "stops-here" not in live_queues()
    assert [s.state for s in worker_list() if s.worker.pk == row.pk] == ["stopped"]
