import os
import shutil
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import psutil
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test.utils import override_settings
from django.utils import timezone

from apps.accounts.models import Right, Role
from apps.audit.constants import Via
from apps.catalog.models import Action, PlaybookSource, Service
from apps.catalog.services import playbook_version_approve, playbook_version_create, source_sync
from apps.catalog.trees import tree_remove
from apps.environments.models import Environment
from tests.audit.database import flush_past_audit_triggers
from tests.clients import page_client
from tests.factories import EnvironmentFactory, GrantFactory, TeamFactory, UserFactory

BASE = Path(__file__).resolve().parent.parent
PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session", autouse=True)
def _audit_log_flushable():
    """The audit log refuses DELETE and TRUNCATE, so the flush after each transactional
    test empties it the way only the database's owner can (tests/audit/database.py)."""
    ops = type(connection.ops)
    flush = flush_past_audit_triggers(ops.execute_sql_flush)
    with mock.patch.object(ops, "execute_sql_flush", flush):
        yield


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hashing():
    """A real password hash takes most of a second on a busy machine, and every user a
    test makes has one: tests hash with a fast (and weak) hasher instead."""
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture(autouse=True)
def _no_run_left_going(request):
    """After a transactional test, no run it left behind may still be going when the
    tables are emptied: the session's worker would write into them meanwhile (and on
    PostgreSQL its transaction and the flush's TRUNCATE can deadlock). Queued runs are
    canceled; running ones are given a moment to end."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None or not marker.kwargs.get("transaction"):
        yield
        return
    request.getfixturevalue("transactional_db")  # set up first, so emptied after this
    yield
    from apps.runs.constants import RunStatus
    from apps.runs.models import Run

    Run.objects.filter(status=RunStatus.QUEUED).update(status=RunStatus.CANCELED)
    Run.objects.filter(status=RunStatus.RUNNING).update(cancel_requested_at=timezone.now())

    def going() -> bool:
        # Only runs a live worker process has; tests also write "running" rows by hand.
        pids = Run.objects.filter(status=RunStatus.RUNNING, worker_pid__gt=0).values_list(
            "worker_pid", flat=True
        )
        return any(pid != os.getpid() and psutil.pid_exists(pid) for pid in pids)

    deadline = time.monotonic() + 30
    while going() and time.monotonic() < deadline:
        time.sleep(0.2)


DB_FIXTURES = (
    "db",
    "transactional_db",
    "django_db_reset_sequences",
    "django_db_serialized_rollback",
)
SESSION_WORKER = "pytest-session-queue@tests"


def worker_row(*queues: str, hostname: str = SESSION_WORKER, seen_ago: float = 0, **fields):
    """A Worker row as a worker's heartbeat writes it, consuming `queues`, its last
    heartbeat `seen_ago` seconds ago."""
    from apps.workers.models import Worker

    seen = timezone.now() - timedelta(seconds=seen_ago)
    worker, _ = Worker.objects.update_or_create(
        hostname=hostname,
        defaults={
            "queues": list(queues),
            "concurrency": 2,
            "pid": os.getpid(),
            "started_at": seen,
            "last_seen_at": seen,
            "stopped_at": None,
            **fields,
        },
    )
    return worker


@pytest.fixture(autouse=True)
def _session_queue_has_a_worker(request):
    """Most tests launch runs with no worker process going (they only check a run was
    created), and a launch to a queue no live worker consumes is refused: so every test
    that uses the database starts with a Worker row consuming the session's queues
    (settings.CELERY_TASK_DEFAULT_QUEUE, every test environment's by default, and the
    housekeeping's), as a
    worker's heartbeat would write it. `@pytest.mark.no_worker_row` opts out. The real
    `celery_worker` process writes rows of its own besides."""
    uses_db = request.node.get_closest_marker("django_db") or any(
        name in request.fixturenames for name in DB_FIXTURES
    )
    if not uses_db or request.node.get_closest_marker("no_worker_row"):
        yield
        return
    marker = request.node.get_closest_marker("django_db")
    transactional = "transactional_db" in request.fixturenames or (
        marker is not None and marker.kwargs.get("transaction")
    )
    request.getfixturevalue("transactional_db" if transactional else "db")
    # Seen "an hour from now", so it stays live however long the test takes.
    worker_row(
        settings.CELERY_TASK_DEFAULT_QUEUE, settings.CELERY_HOUSEKEEPING_QUEUE, seen_ago=-3600
    )
    yield


@pytest.fixture(scope="session", autouse=True)
def _fresh_var_dir():
    # Mirrors and targets of an earlier test session would be stale here.
    for name in (
        "sources",
        "requirements",
        "targets",
        "runs-tmp",
        "demo-playbooks",
        "test-playbooks",
    ):
        shutil.rmtree(settings.VAR_DIR / name, ignore_errors=True)
    tree_remove(settings.TREES_DIR)  # read-only folders


# --- people ---------------------------------------------------------------
@pytest.fixture
def dev(db, local_env):
    """A developer whose team ("developers") may run every service on `local_env`."""
    user = UserFactory(username="dev", role=Role.DEVELOPER)
    team = TeamFactory(slug="developers", members=[user])
    GrantFactory(team=team, service=None, environment=local_env, right=Right.RUN)
    return user


@pytest.fixture
def ops(db):
    return UserFactory(username="ops", role=Role.OPS, is_staff=True, is_superuser=True)


@pytest.fixture
def auditor(db):
    return UserFactory(username="auditor", role=Role.AUDITOR)


@pytest.fixture
def ops_client(ops):
    """A page client signed in as `ops` (the admin's pages, mostly)."""
    return page_client(ops)


# --- playbooks ------------------------------------------------------------
def git_repo(path: Path, files: dict[str, str | Path]) -> Path:
    """A git repository at `path` whose head commit holds `files`."""
    path.mkdir(parents=True, exist_ok=True)
    if not (path / ".git").exists():
        subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    for name, content in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copy(content, target)
        else:
            target.write_text(content)
    subprocess.run(["git", "-C", str(path), "add", "-A"], check=True)
    subprocess.run(
        ["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@example.com",
         "commit", "-q", "--allow-empty", "-m", "test playbooks"],
        check=True,
    )  # fmt: skip
    return path


@pytest.fixture
def test_playbooks(db, ops):
    """The playbooks of tests/playbooks as an approved source; returns {name: version}."""
    repo = git_repo(
        settings.VAR_DIR / "test-playbooks", {p.name: p for p in PLAYBOOKS.glob("*.yml")}
    )
    source = PlaybookSource.objects.create(name="tests", url=str(repo))
    source_sync(source=source, acting_user=ops, via=Via.CLI)
    versions = {}
    for version in source.versions.all():
        versions[version.path.removesuffix(".yml")] = playbook_version_approve(
            version=version, acting_user=ops, via=Via.CLI
        )
    return versions


@pytest.fixture
def local_env(db):
    return EnvironmentFactory(slug="local", name="Local", queue=settings.CELERY_TASK_DEFAULT_QUEUE)


@pytest.fixture
def demo(db, tmp_path):
    """The demo as `make run` loads it, with targets under this test's tmp_path."""
    call_command("load_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    envs = {}
    for env in Environment.objects.all():
        env.inventory["web"]["vars"]["target_root"] = str(tmp_path / env.slug)
        env.save()
        envs[env.slug] = env
    service = Service.objects.get(slug="hello-web")
    from apps.accounts.models import User

    return SimpleNamespace(
        service=service,
        envs=envs,
        deploy=Action.objects.get(service=service, slug="deploy"),
        rollback=Action.objects.get(service=service, slug="rollback"),
        smoke=Action.objects.get(service=service, slug="smoke-test"),
        dev=User.objects.get(username="dev"),
        ops=User.objects.get(username="ops"),
        auditor=User.objects.get(username="auditor"),
        tester=User.objects.get(username="tester"),
        targets=tmp_path,
    )


@pytest.fixture
def history(demo):
    """The demo's run history, written row by row (tests/insights/helpers.History)."""
    from tests.insights.helpers import History

    return History(demo)


__all__ = ["git_repo", "playbook_version_create"]


# --- a real Celery worker ---------------------------------------------------
def _database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker):
    """A real `celery worker` process on the test database and this session's queues (the
    runs' and the housekeeping's)."""
    log_path = settings.VAR_DIR / f"worker-{uuid.uuid4().hex[:8]}.log"
    log = open(log_path, "w+")  # noqa: SIM115
    env = {**os.environ, "DATABASE_URL": _database_url()}
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "celery"), "-A", "portal", "worker",
            "-Q", f"{settings.CELERY_TASK_DEFAULT_QUEUE},{settings.CELERY_HOUSEKEEPING_QUEUE}",
            "--concurrency", "2",
            "-n", f"test-{uuid.uuid4().hex[:8]}@%h", "--loglevel", "INFO",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ],
        cwd=BASE, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while "ready." not in log_path.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"The Celery worker did not start:\n{log_path.read_text()}")
        time.sleep(0.2)
    yield SimpleNamespace(process=proc, log=log_path)
    stop_process(proc, timeout=30)
    log.close()


def stop_process(proc: subprocess.Popen, *, timeout: float) -> None:
    """Ends a process a fixture started: asked first, killed if it does not go in time."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


def wait_for(predicate, *, timeout: float = 60, interval: float = 0.2, message: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(message or f"Timed out after {timeout}s waiting for {predicate}")


# --- browser ------------------------------------------------------------------
@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (CI installs it)")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-sync",
        ],
    }  # fmt: skip


# --- a real SSH target ----------------------------------------------------------
SSHD = "/usr/sbin/sshd"
SSH_VAULT_PASSWORD = "pushbutton-test-vault-password"  # opens tests/playbooks/vault_vars.yml


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def ssh_target(tmp_path_factory):
    """A real OpenSSH server on a loopback port, with a host key of its own, accepting
    one client key (generated in memory, passphrase-protected, never written to disk)
    for the current user. `inventory(target_root)` points an environment at it."""
    import getpass
    import socket

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if not Path(SSHD).exists():
        pytest.skip(f"OpenSSH's server is not installed at {SSHD} (make test and CI install it)")
    root = tmp_path_factory.mktemp("sshd")
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / "host_key")], check=True
    )
    passphrase = f"passphrase {uuid.uuid4().hex}"
    key = Ed25519PrivateKey.generate()
    private_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.BestAvailableEncryption(passphrase.encode()),
    ).decode()
    public_key = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    (root / "authorized_keys").write_bytes(public_key + b" pushbutton-tests\n")
    port, user = free_port(), getpass.getuser()
    host_public = (root / "host_key.pub").read_text().split()[:2]
    (root / "known_hosts").write_text(f"[127.0.0.1]:{port} {' '.join(host_public)}\n")
    (root / "sshd_config").write_text(
        "\n".join(
            [
                f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {root / 'host_key'}",
                f"PidFile {root / 'sshd.pid'}", f"AuthorizedKeysFile {root / 'authorized_keys'}",
                "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
                "StrictModes no", "PermitRootLogin prohibit-password", f"AllowUsers {user}",
                "LogLevel VERBOSE", "",
            ]
        )
    )  # fmt: skip
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # its privilege separation dir
    log = root / "sshd.log"
    proc = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(root / "sshd_config")],
        stdout=open(log, "w"),  # noqa: SIM115 (sshd writes it for its whole life)
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"sshd did not start:\n{log.read_text()}")
        time.sleep(0.1)

    def inventory(target_root: str) -> dict:
        return {
            "web": {
                "hosts": {
                    "ssh-target": {
                        "ansible_host": "127.0.0.1",
                        "ansible_port": port,
                        "ansible_user": user,
                        # The target is this machine: the worker's own Python is there.
                        "ansible_python_interpreter": sys.executable,
                        "ansible_ssh_common_args": (
                            f"-o UserKnownHostsFile={root / 'known_hosts'} "
                            "-o StrictHostKeyChecking=yes"
                        ),
                    }
                },
                "vars": {"target_root": target_root},
            }
        }

    yield SimpleNamespace(
        port=port,
        user=user,
        private_key=private_key,
        passphrase=passphrase,
        log=log,
        inventory=inventory,
        vault_password=SSH_VAULT_PASSWORD,
    )
    stop_process(proc, timeout=10)
