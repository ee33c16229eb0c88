"""Two hosts, as production splits them: host A's worker consumes the test and QA
environments' queues, host B's the production one's. Each is a `celery worker` process
with a VAR_DIR, node name and queues of its own, on the same database and broker (any
broker: CELERY_BROKER_URL; the filesystem one is shared by CELERY_BROKER_DIR).

Real parts only: runs launched through the API, run by ansible-runner on the workers,
the reaper sent by host A's own beat."""

import os
import signal
import time
import uuid

import psutil
import pytest
from django.conf import settings
from django.test import override_settings

from apps.accounts.models import Right, Role
from apps.runs.constants import RunStatus
from apps.runs.models import Run
from apps.runs.selectors import run_log_text
from apps.workers.selectors import live_queues
from tests.clients import api_client, api_launch
from tests.conftest import wait_for
from tests.factories import (
    ActionFactory,
    EnvironmentFactory,
    GrantFactory,
    TeamFactory,
    UserFactory,
)
from tests.runs.helpers import start_worker, stop_worker, wait_final

pytestmark = [pytest.mark.hosts, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

SESSION = uuid.uuid4().hex[:8]
QUEUES = {slug: f"hosts-{SESSION}-{slug}" for slug in ("test", "qa", "production")}
# Each host's beat sends the reaper to a queue only that host consumes.
OWN = {host: f"hosts-{SESSION}-{host}" for host in ("host-a", "host-b")}
NODES = {"host-a": "test@host-a", "host-b": "prod@host-b"}
# Short beats, so a dead host is seen in seconds, not 45 s: a heartbeat every second,
# the reaper every second, a run silent for 3 s is lost.
FAST = {"RUN_HEARTBEAT_SECONDS": "1", "RUN_REAP_SECONDS": "1", "RUN_LOST_AFTER_SECONDS": "3"}


class Host:
    """A worker process standing for a host: its own VAR_DIR, node name and queues."""

    def __init__(self, root, name: str, queues: list[str]):
        self.name, self.node, self.queues = name, NODES[name], queues
        self.var_dir = root / name
        self.var_dir.mkdir(exist_ok=True)
        self.worker = None

    @property
    def runs_tmp(self):
        return self.var_dir / "runs-tmp"

    def start(self) -> None:
        self.worker = start_worker(
            self.var_dir / "worker.log",
            name=self.node,
            queue=",".join([*self.queues, OWN[self.name]]),
            beat=self.name == "host-a",  # one beat for the portal, as in production
            # Its reaper is not held behind the test run it runs meanwhile.
            concurrency=2 if self.name == "host-a" else 1,
            VAR_DIR=str(self.var_dir),
            CELERY_DEFAULT_QUEUE=OWN[self.name],
            CELERY_HOUSEKEEPING_QUEUE=OWN[self.name],
            CELERY_BROKER_DIR=str(settings.BROKER_DIR),
            # What hosts share besides the database and broker: the portal's keys.
            AUDIT_SIGNING_KEY=settings.AUDIT_SIGNING_KEY,
            **FAST,
        )

    def sigkill(self) -> None:
        """What `kill -9` of the worker's process group does (the OOM killer, a host
        gone): the worker and its pool at once; the playbook's processes, sessions of
        their own, are left behind as they would be on a host that still runs."""
        os.killpg(self.worker.process.pid, signal.SIGKILL)
        self.worker.process.wait()

    def stop(self) -> None:
        if self.worker is not None:
            stop_worker(self.worker)


@pytest.fixture(scope="module")
def hosts(django_db_setup, tmp_path_factory):
    root = tmp_path_factory.mktemp("hosts")
    a = Host(root, "host-a", [QUEUES["test"], QUEUES["qa"]])
    b = Host(root, "host-b", [QUEUES["production"]])
    for host in (a, b):
        host.start()
    yield {"host-a": a, "host-b": b}
    for host in (a, b):
        host.stop()


@pytest.fixture
def portal(db, test_playbooks):
    """Test, QA and production, each on its own queue; one action per playbook on all
    three; a developer allowed to run them everywhere, through the API."""
    envs = {
        slug: EnvironmentFactory(slug=slug, queue=QUEUES[slug], order=order)
        for order, slug in enumerate(QUEUES)
    }
    user = UserFactory(username="deployer", role=Role.DEVELOPER)
    team = TeamFactory(slug="deployers", members=[user])
    for env in envs.values():
        GrantFactory(team=team, service=None, environment=env, right=Right.RUN)
    form = [{"name": "seconds", "type": "integer"}]
    sleep = ActionFactory(
        playbook_version=test_playbooks["sleep"], environments=envs.values(), form=form
    )
    echo = ActionFactory(
        service=sleep.service, playbook_version=test_playbooks["echo"], environments=envs.values()
    )
    # The tables were emptied since the last test: the hosts' next heartbeats (every
    # 2 s, WORKER_HEARTBEAT_SECONDS of tests/environment.py) write their rows again.
    wait_for(
        lambda: set(QUEUES.values()) <= set(live_queues()),
        timeout=30,
        message="the hosts' workers are not live",
    )
    return type("Portal", (), {"envs": envs, "api": api_client(user), "sleep": sleep, "echo": echo})


def _launch(portal, action, env: str, **parameters) -> Run:
    answer = api_launch(
        portal.api, env, action=action, service=action.service, parameters=parameters
    )
    assert answer.status_code == 201, answer.content
    return Run.objects.get(pk=answer.json()["id"])


def _shown(portal, run: Run) -> dict:
    """The run as the API shows it."""
    answer = portal.api.get(f"/api/v1/runs/{run.pk}/")
    assert answer.status_code == 200
    return answer.json()


def _sleeping(seconds: int) -> list[psutil.Process]:
    return [
        p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", str(seconds)]
    ]


def test_each_environment_s_runs_execute_only_on_its_host(hosts, portal):
    runs = {env: _launch(portal, portal.echo, env) for env in ("production", "test", "qa")}

    for env, run in runs.items():
        ended = wait_final(run, timeout=90)
        shown = _shown(portal, run)
        # When not, why: its error and the end of its log.
        log = "".join(run_log_text(run=ended)).splitlines()[-20:]
        assert shown["status"] == RunStatus.SUCCESSFUL, (env, ended.error, log)
        expected = NODES["host-b"] if env == "production" else NODES["host-a"]
        assert shown["worker"] == expected, f"the {env} run ran on {shown['worker']}"


def test_a_killed_production_host_s_run_is_lost_through_the_other_host(hosts, portal):
    b = hosts["host-b"]
    seconds = 300 + os.getpid() % 600  # a sleep no other test has
    production = _launch(portal, portal.sleep, "production", seconds=seconds)
    wait_for(lambda: _sleeping(seconds), timeout=90, message="production's sleep never started")
    # A test run on host A that goes on past the moment host B's run is found lost.
    test_run = _launch(portal, portal.sleep, "test", seconds=12)
    wait_for(lambda: _sleeping(12), timeout=90, message="the test run's sleep never started")
    production.refresh_from_db()
    assert (production.status, production.worker) == (RunStatus.RUNNING, NODES["host-b"])

    b.sigkill()
    killed_at = time.monotonic()

    wait_final(production, timeout=60)
    lost_after = time.monotonic() - killed_at
    shown = _shown(portal, production)
    assert shown["status"] == RunStatus.LOST
    assert lost_after < 15, f"lost only {lost_after:.1f} s after the kill"
    # Seen from host A, which cannot reach host B's processes, and says so.
    assert "no heartbeat" in shown["error"]
    assert "on host-b could not be stopped from host-a" in shown["error"], shown["error"]
    assert _sleeping(seconds), "the reaper on host A claims a kill it cannot make"
    # Host A's run was left alone: going on when the other was found lost, then done.
    assert wait_final(test_run, timeout=60).status == RunStatus.SUCCESSFUL
    assert test_run.finished_at > production.finished_at
    assert _shown(portal, test_run)["worker"] == NODES["host-a"]

    # Host B is gone: a production launch is refused at once, naming the queue, rather
    # than left waiting for nobody (silent after 3 s here: its heartbeat is every 2 s).
    with override_settings(WORKER_SILENT_AFTER_SECONDS=3):
        wait_for(lambda: QUEUES["production"] not in live_queues(), timeout=15)
        refused = api_launch(
            portal.api, "production", action=portal.echo, service=portal.echo.service
        )
    assert refused.status_code == 503, refused.content
    assert refused.json()["queue"] == QUEUES["production"]
    assert QUEUES["production"] in refused.json()["detail"]
    assert (
        not Run.objects.filter(environment=portal.envs["production"])
        .exclude(pk=production.pk)
        .exists()
    )

    # Host B's worker back: what the lost run left there is stopped and removed.
    b.start()
    wait_for(lambda: not _sleeping(seconds), timeout=30, message="the lost run's sleep was left")
    assert not list(b.runs_tmp.glob(f"run-{production.pk}-*")), "its private dir was left"
    # The lock was freed with it: production takes a deploy again, on host B.
    again = wait_final(_launch(portal, portal.echo, "production"), timeout=90)
    assert (again.status, again.worker) == (RunStatus.SUCCESSFUL, NODES["host-b"])
