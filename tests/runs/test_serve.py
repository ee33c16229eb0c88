"""`manage.py serve` (what `make run` starts) keeps the portal up when a process dies:
the web goes on answering, a killed worker or beat is restarted, and the run the
worker had ends lost, freeing its lock. The housekeeping (the reaper) has a worker of
its own: it goes on while every slot of the runs' worker is busy. Ctrl-C (SIGTERM)
still stops everything."""

import http.client
import json
import os
import signal
import subprocess
import sys
import uuid
from datetime import timedelta
from types import SimpleNamespace

import psutil
import pytest
from django.conf import settings
from django.utils import timezone

from apps.accounts.services import token_create
from apps.runs.constants import RunStatus
from apps.runs.models import Run
from apps.workers.selectors import live_queues
from tests.conftest import BASE, _database_url, free_port, wait_for
from tests.factories import ActionFactory, RunFactory
from tests.runs.helpers import wait_final

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def serve(local_env, tmp_path):
    """`manage.py serve` on a free port, with a VAR_DIR of its own (its broker, beat
    schedule and runs' private dirs), on the test database and a queue of its own that
    `local_env` uses; quick heartbeats and reaping."""
    queue = f"serve-{uuid.uuid4().hex[:8]}"
    local_env.queue = queue
    local_env.save()
    port = free_port()
    var = tmp_path / "var"
    log = tmp_path / "serve.log"
    env = {
        **os.environ,
        "VAR_DIR": str(var),
        "DATABASE_URL": _database_url(),
        "SECRET_KEY": settings.SECRET_KEY,  # its secrets are the tests' secrets
        "FIELD_ENCRYPTION_KEY": os.getenv("FIELD_ENCRYPTION_KEY", ""),
        "WORKER_QUEUES": queue,
        "CELERY_DEFAULT_QUEUE": queue,
        # Beat sends the reaper to serve's own housekeeping worker.
        "CELERY_HOUSEKEEPING_QUEUE": f"{queue}-housekeeping",
        "WORKER_CONCURRENCY": "1",
        "RUN_HEARTBEAT_SECONDS": "1",
        "RUN_LOST_AFTER_SECONDS": "5",
        "RUN_REAP_SECONDS": "2",
    }
    output = open(log, "w")  # noqa: SIM115 (serve and its children write it all along)
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{port}"],
        cwd=BASE, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    served = SimpleNamespace(
        process=process, port=port, log=log, var=var, output=lambda: log.read_text()
    )

    def started() -> bool:
        assert process.poll() is None, f"serve exited:\n{served.output()}"
        return bool(
            _signin_page(served) == 200
            and _child(process, "worker")
            and _child(process, "housekeeping")
            and _child(process, "beat")
            # What a launch asks: the runs' worker has announced its queue (its
            # "ready." alone may come first, or be the housekeeping worker's).
            and live_queues().get(queue)
        )

    try:
        wait_for(started, timeout=120, message="serve did not start")
        yield served
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        output.close()


def _request(port: int, method: str, path: str, body=None, key: str = "") -> tuple[int, bytes]:
    """Ask serve's web process; (0, b"") when it does not answer."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Token {key}"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, json.dumps(body) if body else None, headers)
        response = connection.getresponse()
        return response.status, response.read()
    except OSError:
        return 0, b""
    finally:
        connection.close()


def _signin_page(serve) -> int:
    return _request(serve.port, "GET", "/accounts/login/")[0]


def _child(serve_process, name: str) -> psutil.Process | None:
    """serve's `web`, `worker` (of the runs), `housekeeping` (worker) or `beat` process."""
    word = {"web": "gunicorn", "worker": "worker", "housekeeping": "worker", "beat": "beat"}
    for child in psutil.Process(serve_process.pid).children():
        try:
            command = child.cmdline()
        except psutil.NoSuchProcess:
            continue
        housekeeping = "pushbutton-housekeeping@%h" in command
        if word[name] in command and housekeeping == (name == "housekeeping"):
            return child
    return None


def _launch(serve, key: str, action, environment, parameters: dict) -> tuple[int, dict]:
    """Launch through serve's API, as CI does."""
    body = {
        "service": action.service.slug,
        "action": action.slug,
        "environment": environment.slug,
        "parameters": parameters,
    }
    status, content = _request(serve.port, "POST", "/api/v1/runs/", body, key=key)
    return status, json.loads(content or b"{}")


def _kill(serve, name: str) -> int:
    """SIGKILL serve's `name` process; wait until serve has started another."""
    victim = _child(serve.process, name)
    victim.kill()
    wait_for(
        lambda: (new := _child(serve.process, name)) is not None and new.pid != victim.pid,
        timeout=60,
        message=f"serve did not restart the {name}",
    )
    return victim.pid


def test_a_killed_worker_or_beat_is_restarted_and_the_portal_stays_up(
    serve, test_playbooks, local_env, dev
):
    action = ActionFactory(
        playbook_version=test_playbooks["sleep"],
        environments=[local_env],
        form=[{"name": "seconds", "type": "integer"}],
    )
    _, key = token_create(user=dev, name="ci", acting_user=None, via="cli")
    seconds = 400 + uuid.uuid4().int % 500  # a sleep no other test has
    sleep = ["sleep", str(seconds)]
    status, body = _launch(serve, key, action, local_env, {"seconds": seconds})
    assert status == 201, body
    run = Run.objects.get(pk=body["id"])
    wait_for(
        lambda: [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == sleep],
        timeout=90,
        message="the playbook's sleep never started",
    )  # fmt: skip

    # The runs' worker has one slot, and the sleep holds it: the reaper still ends at
    # once the run of a worker that died on another host (its heartbeat long silent).
    elsewhere = RunFactory(
        status=RunStatus.RUNNING,
        worker="pushbutton-runs@elsewhere",
        started_at=timezone.now() - timedelta(minutes=5),
        heartbeat_at=timezone.now() - timedelta(minutes=4),
        version="",
    )
    assert wait_final(elsewhere, timeout=30).status == RunStatus.LOST
    assert Run.objects.get(pk=run.pk).status == RunStatus.RUNNING

    _kill(serve, "worker")

    assert _signin_page(serve) == 200  # the web went on
    assert "worker exited with signal 9; restarting in 1 s" in serve.output()
    run = wait_final(run, timeout=90)
    assert run.status == RunStatus.LOST
    # The new worker has the old one's name: it could end the run at once.
    wait_for(
        lambda: serve.output().count(f"{run.worker} ready.") == 2,
        timeout=30,
        message=f"no second {run.worker} said it was ready",
    )
    wait_for(
        lambda: not list((serve.var / "runs-tmp").glob(f"run-{run.pk}-*")),
        timeout=30,
        message="the lost run's private dir was left",
    )
    # Its lock went with it: the next deploy is accepted, and the new worker runs it.
    status, body = _launch(serve, key, action, local_env, {"seconds": 1})
    assert status == 201, body
    assert wait_final(Run.objects.get(pk=body["id"])).status == RunStatus.SUCCESSFUL

    _kill(serve, "beat")

    assert "beat exited with signal 9; restarting in 1 s" in serve.output()
    assert _signin_page(serve) == 200


def test_sigterm_stops_every_process_of_serve(serve):
    children = psutil.Process(serve.process.pid).children(recursive=True)
    assert len(children) >= 4

    serve.process.send_signal(signal.SIGTERM)

    assert serve.process.wait(timeout=60) == 0
    wait_for(
        lambda: not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE],
        timeout=30,
        message="serve left processes behind",
    )
