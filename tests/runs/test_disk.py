"""No secret is left on disk, however a run ends.

A real playbook uses secrets in modules (a fact, a file's content, a command's
arguments, a hidden result, the arguments of the module still running) through the
real worker, over a local connection and over SSH (the loopback target is this machine,
so the remote side's temp files are here too). It ends each way a run ends; then the
home of the user running it, /tmp, /var/tmp and VAR_DIR are searched for the secrets:
as written, in UTF-16, base64-encoded, and inside zip archives (AnsiballZ payloads).
"""

import base64
import binascii
import io
import os
import pwd
import re
import signal
import stat
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
from django.conf import settings

from apps.audit.models import Via
from apps.catalog.models import PlaybookSource
from apps.catalog.services import playbook_version_approve, source_sync
from apps.environments.models import CredentialKind
from apps.environments.services import credential_create
from apps.runs import private_dir, runner, services
from apps.runs.constants import RunStatus
from apps.runs.models import RunEvent
from tests.conftest import PLAYBOOKS, git_repo, wait_for
from tests.factories import ActionFactory
from tests.runs.helpers import launch, start_worker, stop_worker, wait_final

FORM = [
    {"name": "seconds", "type": "integer"},
    {"name": "fail", "type": "boolean"},
    {"name": "password", "type": "secret"},
]
HOLD = "Hold on, with a secret among the running module's arguments"
TIMEOUT = 20  # seconds: time enough to reach the hold, which outlasts it
ENDINGS = {
    "successful": RunStatus.SUCCESSFUL,
    "failed": RunStatus.FAILED,
    "canceled": RunStatus.CANCELED,
    "timed-out": RunStatus.TIMED_OUT,
    "worker-killed": RunStatus.LOST,
}
# Long runs of base64 in a file: an AnsiballZ wrapper carries its zip that way.
BASE64_RUN = re.compile(rb"[A-Za-z0-9+/]{400,}={0,2}")


# --- where secrets could be ------------------------------------------------------------
def _needles(value: str) -> list[bytes]:
    """`value` as written, in UTF-16, and base64-encoded at each of the three alignments
    it can have inside a longer encoded text (only the characters it alone decides)."""
    raw = value.encode()
    needles = [raw, value.encode("utf-16-le")]
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw)
        needles.append(encoded[(offset * 4 + 2) // 3 : (offset + len(raw)) // 3 * 4])
    return needles


def _contents(data: bytes):
    """A file's bytes, and the members of the zip archives it is or carries in base64."""
    yield data
    archives = [data] if data.startswith(b"PK\x03\x04") else []
    for match in BASE64_RUN.findall(data):
        try:
            archives.append(base64.b64decode(match))
        except (binascii.Error, ValueError):
            continue
    for archive in archives:
        try:
            with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
                for name in zipped.namelist():
                    yield zipped.read(name)
        except (zipfile.BadZipFile, OSError, EOFError):
            continue


def _files_changed_since(roots: list[Path], since: float):
    seen = set()
    for root in roots:
        for folder, _, names in os.walk(root):
            for name in names:
                path = os.path.join(folder, name)
                if path in seen:
                    continue
                seen.add(path)
                try:
                    info = os.lstat(path)
                except OSError:
                    continue
                if stat.S_ISREG(info.st_mode) and max(info.st_mtime, info.st_ctime) >= since:
                    yield Path(path)


def secrets_on_disk(secrets: dict[str, str], roots: list[Path], since: float) -> list[str]:
    """`path: secret name` for each file under `roots` changed since `since` that holds one
    of `secrets`."""
    needles = {name: _needles(value) for name, value in secrets.items()}
    found = set()
    for path in _files_changed_since(roots, since):
        try:
            data = path.read_bytes()
        except OSError:
            continue  # gone meanwhile
        for content in _contents(data):
            found |= {f"{path}: {n}" for n, ns in needles.items() if any(x in content for x in ns)}
    return sorted(found)


def areas_ansible_may_touch(*users: str) -> list[Path]:
    homes = [Path(pwd.getpwnam(user).pw_dir) for user in users]
    return [
        *homes, Path.home(), Path("/tmp"), Path(tempfile.gettempdir()), Path("/var/tmp"),
        settings.VAR_DIR, settings.RUNS_TMP_DIR,
    ]  # fmt: skip


def test_the_search_finds_a_secret_however_it_is_written(tmp_path):
    # The search itself can fail: a secret written plainly, base64-encoded inside a
    # longer text, or zipped inside an AnsiballZ-like wrapper is found.
    since = time.time() - 1
    secret = f"secret-{uuid.uuid4().hex}"
    (tmp_path / "plain").write_text(f"x {secret} y")
    (tmp_path / "encoded").write_bytes(base64.b64encode(f"ab{secret}cd".encode()))
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("module.py", os.urandom(600).hex())  # a payload of some size
        zipped.writestr("args.json", f'{{"password": "{secret}"}}')
    (tmp_path / "AnsiballZ_x.py").write_bytes(
        b'ZIPDATA = """' + base64.b64encode(archive.getvalue()) + b'"""'
    )
    (tmp_path / "other").write_text("nothing here")

    found = secrets_on_disk({"the secret": secret}, [tmp_path], since)

    assert found == [
        f"{tmp_path / name}: the secret" for name in ("AnsiballZ_x.py", "encoded", "plain")
    ]


# --- the private dir ----------------------------------------------------------------------
def test_a_private_dir_too_deep_for_sockets_gets_a_short_tmp_and_both_go(settings, tmp_path):
    settings.RUNS_TMP_DIR = tmp_path / ("a-rather-long-folder-name/" * 4)

    private = private_dir.private_dir_create(7)

    assert len(str(private.tmp)) <= private_dir.MAX_TMP_CHARS
    assert not private.tmp.is_relative_to(private.path)
    assert private_dir.private_dir_env(private)["TMPDIR"] == str(private.tmp)
    assert set(private_dir.private_dirs(7)) == {private.path, private.tmp}
    assert private_dir.private_dirs_remove(7) == 2
    assert not private.path.exists() and not private.tmp.exists()


def test_the_inventory_sends_local_hosts_temp_files_to_the_private_dir(tmp_path):
    private = private_dir.PrivateDir(path=tmp_path, tmp=tmp_path / "tmp")
    web = {"hosts": {"web1": {}, "me": {"ansible_connection": "local"}}}

    inventory = private_dir.private_dir_inventory({"web": web}, private)

    assert inventory["web"]["hosts"]["web1"] == {}
    assert inventory["web"]["hosts"]["me"]["ansible_python_interpreter"] == sys.executable
    remote_tmp = inventory["all"]["vars"]["ansible_remote_tmp"]
    assert str(tmp_path / "tmp" / "remote") in remote_tmp and "else omit" in remote_tmp
    # An inventory that says where its remote temp is keeps it.
    own = {"all": {"vars": {"ansible_remote_tmp": "/var/tmp/ansible"}}, "web": web}
    kept = private_dir.private_dir_inventory(own, private)["all"]["vars"]
    assert kept["ansible_remote_tmp"] == "/var/tmp/ansible"
    assert "async" in kept["ansible_async_dir"]


# --- a run that uses secrets, ended each way ------------------------------------------------
@pytest.fixture
def playbook(db, ops, tmp_path):
    """secrets_on_disk.yml, approved, in a repository whose ansible.cfg asks Ansible to
    keep the files it writes on hosts, not to pipeline, to log its output and to write
    retry files: what the run's environment says wins."""
    config = [
        "[defaults]", "keep_remote_files = True", f"log_path = {tmp_path / 'ansible.log'}",
        "retry_files_enabled = True", "[connection]", "pipelining = False", "",
    ]  # fmt: skip
    repo = git_repo(
        tmp_path / "playbooks",
        {
            "secrets_on_disk.yml": PLAYBOOKS / "secrets_on_disk.yml",
            "ansible.cfg": "\n".join(config),
        },
    )
    source = PlaybookSource.objects.create(name="configured", url=str(repo))
    source_sync(source=source, acting_user=ops, via=Via.CLI)
    version = source.versions.get(path="secrets_on_disk.yml")
    return playbook_version_approve(version=version, acting_user=ops, via=Via.CLI)


@pytest.fixture(params=["local", "ssh"])
def target(request, local_env, ops, tmp_path):
    """`local_env`, reached over a local connection or over SSH (with a passphrase-
    protected key), with a secret variable; the secrets, by name."""
    root = tmp_path / "target"
    root.mkdir()
    token = f"token-{uuid.uuid4().hex}"
    secrets = {"api_token": token}
    common = {"environments": [local_env], "acting_user": ops, "via": Via.ADMIN}
    users = [pwd.getpwuid(os.getuid()).pw_name]
    if request.param == "ssh":
        ssh = request.getfixturevalue("ssh_target")
        local_env.inventory = ssh.inventory(str(root))
        credential_create(
            name="deploy key", kind=CredentialKind.SSH_KEY, value=ssh.private_key,
            passphrase=ssh.passphrase, **common,
        )  # fmt: skip
        secrets["key passphrase"] = ssh.passphrase
        secrets["private key"] = ssh.private_key.splitlines()[-2]  # of its encrypted part
        users.append(ssh.user)
    else:
        local_env.inventory = {
            "web": {
                "hosts": {"localhost": {"ansible_connection": "local"}},
                "vars": {"target_root": str(root)},
            }
        }
    local_env.save()
    credential_create(
        name="api token", kind=CredentialKind.SECRET_VARIABLE, variable="api_token",
        value=token, **common,
    )  # fmt: skip
    return SimpleNamespace(
        connection=request.param, env=local_env, root=root, secrets=secrets, users=users
    )


@pytest.fixture
def own_worker(target, tmp_path):
    """A worker of its own, on a queue of its own that `target` uses, to be killed."""
    queue = f"disk-{uuid.uuid4().hex[:8]}"
    target.env.queue = queue
    target.env.save()
    name = f"disk-{uuid.uuid4().hex[:8]}@%h"
    log = tmp_path / "worker.log"
    workers = [start_worker(log, name=name, queue=queue, RUN_HEARTBEAT_SECONDS="1")]

    def restart():
        workers.append(start_worker(log, name=name, queue=queue, RUN_HEARTBEAT_SECONDS="1"))

    yield SimpleNamespace(process=workers[0].process, restart=restart)
    for worker in workers:
        stop_worker(worker)


def _sleeping(seconds: int) -> list[psutil.Process]:
    return [
        p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", str(seconds)]
    ]


def _end(run, ending: str, *, seconds: int, stale: set, request, user, while_holding):
    """End `run` the way `ending` says; returns it once ended and cleaned up after."""
    if ending in ("canceled", "worker-killed"):
        wait_for(lambda: _sleeping(seconds), timeout=90, message="the hold never started")
        while_holding()
    if ending == "canceled":
        services.run_cancel(run=run, user=user, via=Via.API)
    if ending == "worker-killed":
        worker = request.getfixturevalue("own_worker")
        # What the OOM killer or `kill -9` does: the worker and its pool, at once.
        os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait()
        worker.restart()  # it marks its runs lost and cleans up after them
    run = wait_final(run, timeout=120)
    # Dirs of a run of the same id that an earlier test session left are not this one's.
    wait_for(
        lambda: not set(private_dir.private_dirs(run.pk)) - stale,
        timeout=30,
        message="its private dir was left",
    )
    wait_for(lambda: not runner.run_processes(run.marker), timeout=30, message="processes left")
    return run


@pytest.mark.slow
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("ending", list(ENDINGS))
def test_no_secret_is_left_on_disk_however_the_run_ends(ending, target, request, playbook, dev):
    since = time.time() - 1  # file times may be a little behind the clock
    if ending != "worker-killed":
        request.getfixturevalue("celery_worker")
    else:
        request.getfixturevalue("own_worker")
    holds = ending in ("canceled", "timed-out", "worker-killed")
    seconds = 400 + uuid.uuid4().int % 500 if holds else 1  # a sleep no other test has
    action = ActionFactory(
        playbook_version=playbook,
        environments=[target.env],
        form=FORM,
        timeout=TIMEOUT if ending == "timed-out" else 300,
    )
    password = f"password-{uuid.uuid4().hex}"
    secrets = {**target.secrets, "password": password}

    def sockets_here():
        # The SSH connection's control socket is in the run's private dir, not ~/.ansible/cp.
        if target.connection == "ssh":
            assert [
                s
                for d in private_dir.private_dirs(run.pk)
                for s in d.glob("**/cp/*")
                if s.is_socket()
            ]

    stale = {
        *settings.RUNS_TMP_DIR.glob("run-*"),
        *Path(tempfile.gettempdir()).glob("pushbutton-*-run-*"),
    }
    try:
        run = launch(
            dev, action, target.env,
            {"seconds": seconds, "fail": ending == "failed", "password": password},
        )  # fmt: skip
        run = _end(
            run, ending, seconds=seconds, stale=stale, request=request, user=dev,
            while_holding=sockets_here,
        )  # fmt: skip
    finally:
        for proc in _sleeping(seconds):  # over SSH, the target's side outlives the run
            proc.kill()

    assert run.status == ENDINGS[ending], run.error
    # The modules had the secrets: the playbook wrote them where it was meant to.
    written = target.root / "credentials"
    assert written.read_text() == f"{secrets['api_token']} {password}\n"
    written.unlink()
    if ending == "timed-out":  # in the middle of the module holding a secret
        assert RunEvent.objects.filter(run=run, task=HOLD).exists()
    assert secrets_on_disk(secrets, areas_ansible_may_touch(*target.users), since) == []
