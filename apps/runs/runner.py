"""The ansible-runner executor: the only module that imports ansible_runner.

Each run gets a fresh private data dir (0700) holding the project files of the
pinned commit, the environment's inventory and the extra vars. It is removed
in `finally`, with the artifacts ansible-runner keeps there (its `command` file
holds the command line and the environment).

Credentials reach Ansible without touching disk in clear where ansible-runner
allows it: an SSH key through its ssh-agent support (written to a FIFO that
ssh-add reads), passwords as answers to Ansible's prompts (become, vault, the
key's passphrase). Secret variables and secret form fields are extra vars, a
0600 file inside the private dir. ansible-runner is told not to write its
inputs to env/ (suppress_env_files), and the portal's own secrets are emptied
from the environment the playbook runs in.
"""

import contextlib
import glob
import json
import logging
import os
import shlex
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import ansible_runner
import psutil
import yaml
from django.conf import settings
from django.db import connections

from apps.catalog import git
from apps.environments.constants import CredentialKind
from apps.runs.constants import RunStatus
from apps.runs.events import EventSink
from apps.runs.models import Run

log = logging.getLogger(__name__)

MARKER_VAR = "PUSHBUTTON_RUN_MARKER"
CANCEL_POLL_SECONDS = 1.0
# Ansible's prompts, answered from the run's credentials (ansible-runner's `passwords`).
# ansible-runner looks for them in the last 100 characters of output only: ssh-add's
# "Enter passphrase for <private dir>/artifacts/run/ssh_key_data: " is matched by its end.
BECOME_PROMPT = r"^BECOME password[^\n]*:\s*$"
VAULT_PROMPT = r"^Vault password[^\n]*:\s*$"
PASSPHRASE_PROMPT = r"/ssh_key_data[^\n/]*:\s*$"  # noqa: S105 (a prompt, not a password)
# ssh-agent puts its socket under TMPDIR: a unix socket path has ~100 bytes at most.
MAX_TMPDIR_CHARS = 60
# A version the playbook reports longer than the run's column holds is cut.
VERSION_MAX_CHARS = Run._meta.get_field("version").max_length
# ansible-runner's own settings: its loop comes back every 0.25 s (events are stored and
# cancels seen that often; its default is 5 s), and it keeps no copy of the output.
RUNNER_SETTINGS = {"pexpect_timeout": 0.25, "suppress_output_file": True}


@dataclass
class Outcome:
    status: str
    rc: int | None = None
    host_summary: dict = field(default_factory=dict)
    error: str = ""
    version: str = ""


class _Unsafe(str):
    """A string Ansible must never template: written with the !unsafe tag."""


class _ExtraVarsDumper(yaml.SafeDumper):
    pass


_ExtraVarsDumper.add_representer(
    _Unsafe, lambda dumper, value: dumper.represent_scalar("!unsafe", str(value))
)


def _unsafe(value):
    if isinstance(value, str):
        return _Unsafe(value)
    if isinstance(value, list):
        return [_unsafe(v) for v in value]
    if isinstance(value, dict):
        return {k: _unsafe(v) for k, v in value.items()}
    return value


def _write_private(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)


def _inventory(inventory: dict) -> dict:
    """The environment's inventory, with local hosts using the worker's own Python."""
    inventory = json.loads(json.dumps(inventory))

    def visit(group: dict) -> None:
        for host_vars in (group.get("hosts") or {}).values():
            if host_vars is not None and host_vars.get("ansible_connection") == "local":
                host_vars.setdefault("ansible_python_interpreter", sys.executable)
        for child in (group.get("children") or {}).values():
            visit(child or {})

    for group in inventory.values():
        visit(group or {})
    return inventory


def run_processes(marker: str) -> list[psutil.Process]:
    """Every live process of a run: those carrying its marker, and their descendants.

    ansible-core starts its workers in sessions of their own, so the process
    group is not enough; the marker is inherited through the environment.
    """
    found: dict[int, psutil.Process] = {}
    me = os.getpid()
    for proc in psutil.process_iter():
        try:
            if proc.pid != me and proc.environ().get(MARKER_VAR) == marker:
                found[proc.pid] = proc
                for child in proc.children(recursive=True):
                    found[child.pid] = child
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return list(found.values())


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
    return alive


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    # Polls instead of psutil.wait_procs: waiting would reap ansible-playbook,
    # which is pexpect's child to reap, not ours.
    deadline = time.monotonic() + timeout
    while (alive := _alive(procs)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def run_processes_kill(marker: str, grace: float = 3.0) -> int:
    """Stop the whole process tree of a run: SIGTERM, then SIGKILL what is left."""
    killed = 0
    for _ in range(5):
        procs = _alive(run_processes(marker))
        if not procs:
            break
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.terminate()
        for proc in _wait_gone(procs, grace):
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        _wait_gone(procs, grace)
        killed += len(procs)
    return killed


def run_secrets(secret_values: dict, credentials: Sequence[dict]) -> list[str]:
    """Every secret value a run knows of: what its output must never show."""
    values = [v for v in secret_values.values() if isinstance(v, str)]
    for credential in credentials:
        values += [credential["secret"], credential.get("passphrase") or ""]
    return [v for v in values if v]


def private_dirs_remove(run_id: int) -> int:
    """Remove what a run left in RUNS_TMP_DIR (its worker died before its `finally`)."""
    removed = 0
    for path in glob.glob(str(settings.RUNS_TMP_DIR / f"run-{int(run_id)}-*")):
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed


def execute(
    run,
    *,
    secret_values: dict,
    credentials: Sequence[dict] = (),
    cancel_requested: Callable[[], bool],
    heartbeat: Callable[[], bool | None],
) -> Outcome:
    """Run the pinned playbook of `run` and store its events; return how it ended.

    `cancel_requested` and `heartbeat` are called from the runner's loop and must
    not raise; a heartbeat that returns False is tried again a second later.
    """
    settings.RUNS_TMP_DIR.mkdir(parents=True, exist_ok=True)
    private = Path(tempfile.mkdtemp(prefix=f"run-{run.pk}-", dir=settings.RUNS_TMP_DIR))
    marker = run.marker or f"{run.pk}-{uuid.uuid4().hex}"
    sink = EventSink(run.pk, secrets=run_secrets(secret_values, credentials))
    state = {
        "ended_by": None,
        "last_poll": 0.0,
        "last_beat": time.monotonic(),
        "started": time.monotonic(),
        "status": "",
    }

    def cancel_callback() -> bool:
        sink.tick()
        now = time.monotonic()
        if state["ended_by"] is None:
            if now - state["started"] > run.timeout:
                state["ended_by"] = RunStatus.TIMED_OUT
            elif now - state["last_poll"] >= CANCEL_POLL_SECONDS:
                state["last_poll"] = now
                if cancel_requested():
                    state["ended_by"] = RunStatus.CANCELED
            if now - state["last_beat"] >= settings.RUN_HEARTBEAT_SECONDS:
                beat = heartbeat()
                # A failed heartbeat (database away) is tried again a second later.
                state["last_beat"] = (
                    now if beat is not False else now - settings.RUN_HEARTBEAT_SECONDS + 1
                )
        if state["ended_by"] is not None:
            run_processes_kill(marker)
            return True
        return False

    def status_handler(status_data: dict, runner_config=None) -> None:
        # The `starting` status carries the command line and the whole environment:
        # only the status name is kept, nothing is logged or stored from the rest.
        state["status"] = str(status_data.get("status", ""))

    try:
        try:
            # Fetching and exporting the playbook may take minutes (a clone): the
            # heartbeat must go on meanwhile, or a reaper would take the run for lost.
            with _beating(heartbeat):
                _prepare(run, private, secret_values, credentials)
        except (git.GitError, ValueError) as exc:
            return Outcome(RunStatus.FAILED, error=sink.masker.text(str(exc)))
        if cancel_requested():
            # Canceled, or no longer running (a reaper ended it): Ansible never starts.
            return Outcome(RunStatus.CANCELED)
        options = _runner_options(run, private, marker, credentials)
        result = ansible_runner.run(
            private_data_dir=str(private),
            playbook=run.playbook_path,
            ident="run",
            quiet=True,
            suppress_env_files=True,
            settings=dict(RUNNER_SETTINGS),
            event_handler=sink.add,
            cancel_callback=cancel_callback,
            status_handler=status_handler,
            **options,
        )
        sink.flush()
        return _outcome(result, sink, state["ended_by"])
    finally:
        try:
            sink.flush()
        finally:
            run_processes_kill(marker, grace=1.0)
            shutil.rmtree(private, ignore_errors=True)


@contextlib.contextmanager
def _beating(heartbeat: Callable[[], bool | None]):
    """Call `heartbeat` every RUN_HEARTBEAT_SECONDS from a thread while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(settings.RUN_HEARTBEAT_SECONDS):
                heartbeat()
        finally:
            # The thread's own database connection, if the heartbeat opened one.
            connections.close_all()

    thread = threading.Thread(target=beat, name="run-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _runner_options(run, private: Path, marker: str, credentials: Sequence[dict]) -> dict:
    """ansible-runner's command line, environment, prompts' answers and SSH key."""
    args = ["--check", "--diff"] if run.check_mode else []
    passwords = {}
    ssh_key = None
    for credential in credentials:
        kind = credential["kind"]
        if kind == CredentialKind.SSH_KEY:
            ssh_key = credential["secret"]
            if credential.get("passphrase"):
                passwords[PASSPHRASE_PROMPT] = credential["passphrase"]
        elif kind == CredentialKind.BECOME_PASSWORD:
            args.append("--ask-become-pass")
            passwords[BECOME_PROMPT] = credential["secret"]
        elif kind == CredentialKind.VAULT_PASSWORD:
            args.append("--ask-vault-pass")
            passwords[VAULT_PROMPT] = credential["secret"]
    tmp = private / "tmp"
    tmp.mkdir(mode=0o700)
    envvars = {
        **dict.fromkeys(settings.RUN_HIDDEN_ENV, ""),
        MARKER_VAR: marker,
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
        "ANSIBLE_FORCE_COLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_HOST_KEY_CHECKING": "True" if settings.RUN_SSH_HOST_KEY_CHECKING else "False",
        # Module files (with their arguments) are written here, and go with the run.
        "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible"),
        # ssh-add must ask its passphrase on the terminal, not through a GUI helper.
        "DISPLAY": "",
        "SSH_ASKPASS": "",
    }
    if len(str(tmp)) <= MAX_TMPDIR_CHARS:
        envvars["TMPDIR"] = str(tmp)
    options = {"envvars": envvars, "cmdline": shlex.join(args) if args else None}
    if passwords:
        options["passwords"] = passwords
    if ssh_key:
        options["ssh_key"] = ssh_key
    return options


def playbook_path_check(project: Path, path: str) -> None:
    """Refuse a playbook path that is absolute, climbs out (..) or leads outside the
    checkout through a symlink, or is not a file there."""
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts:
        raise ValueError(f"Refused playbook path {path!r}: it must stay inside the checkout.")
    root = project.resolve()
    target = (project / path).resolve()
    if not target.is_relative_to(root):
        raise ValueError(f"Refused playbook path {path!r}: it leads outside the checkout.")
    if not target.is_file():
        raise ValueError(f"No playbook {path!r} in the checkout.")


def _prepare(run, private: Path, secret_values: dict, credentials: Sequence[dict] = ()) -> None:
    source = run.playbook_version.source
    try:
        commit = git.commit_resolve(source.mirror_path, run.playbook_commit)
    except git.GitError:
        git.mirror_update(source.url, source.mirror_path)
        commit = git.commit_resolve(source.mirror_path, run.playbook_commit)
    project = private / "project"
    project.mkdir(mode=0o700)
    git.tree_export(source.mirror_path, commit, project)
    actual = git.tree_hash(project)
    if actual != run.content_hash:
        raise ValueError(
            f"The playbook content changed: expected SHA-256 {run.content_hash}, found {actual}."
        )
    playbook_path_check(project, run.playbook_path)
    # ansible-runner drops its `settings` argument when env/settings is missing (and
    # suppress_env_files keeps it from writing one): they are written here.
    _write_private(private / "env" / "settings", json.dumps(RUNNER_SETTINGS))
    _write_private(private / "inventory" / "hosts.json", json.dumps(_inventory(run.inventory)))
    extravars = {
        **run.parameters,
        **secret_values,
        **{
            c["variable"]: c["secret"]
            for c in credentials
            if c["kind"] == CredentialKind.SECRET_VARIABLE
        },
        "pushbutton_run_id": run.pk,
        "pushbutton_service": run.service.slug,
        "pushbutton_environment": run.environment.slug,
    }
    _write_private(
        private / "env" / "extravars",
        yaml.dump(_unsafe(extravars), Dumper=_ExtraVarsDumper, allow_unicode=True),
    )


def _outcome(result, sink: EventSink, ended_by: str | None) -> Outcome:
    outcome = Outcome(
        status=RunStatus.FAILED,
        rc=result.rc,
        host_summary=sink.host_summary,
        version=str(sink.artifact_data.get("version", ""))[:VERSION_MAX_CHARS],
    )
    if ended_by is not None:
        outcome.status = ended_by
    elif sink.no_hosts_matched or (result.status == "successful" and not sink.host_summary):
        outcome.error = "No host matched the play: nothing was deployed."
    elif result.status == "successful":
        outcome.status = RunStatus.SUCCESSFUL
    elif result.status == "timeout":
        outcome.status = RunStatus.TIMED_OUT
    elif result.status == "error":
        outcome.error = "ansible-runner could not run the playbook."
    return outcome
