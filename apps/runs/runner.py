"""The ansible-runner executor: the only module that imports ansible_runner.

Each run gets a fresh private dir (0700, apps/runs/private_dir.py) holding the
project files of the pinned commit, the environment's inventory (or, when it is kept in
the repository, that path of the exported project: apps/environments/inventories.py)
and the extra vars,
and every file Ansible and ansible-runner write on the worker while it runs. It is
removed in `finally`; what a killed worker left, by the reaper or the restarted worker.

Credentials reach Ansible without touching disk in clear where ansible-runner
allows it: an SSH key through its ssh-agent support (written to a FIFO that
ssh-add reads), passwords as answers to Ansible's prompts (become, vault, the
key's passphrase). Secret variables and secret form fields are extra vars, a
0600 file inside the private dir. ansible-runner is told not to write its
inputs to env/ (suppress_env_files), and the portal's own secrets are emptied
from the environment the playbook runs in.
"""

import contextlib
import json
import logging
import os
import shlex
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import ansible_runner
import pexpect
import psutil
import yaml
from django.conf import settings
from django.db import connections
from django.utils import timezone

from apps.catalog import git, requirements, trees
from apps.environments.constants import CredentialKind
from apps.environments.inventories import inventory_path_check
from apps.runs.constants import RunStatus
from apps.runs.events import EventSink, SecretMasker
from apps.runs.private_dir import (
    PrivateDir,
    private_dir_create,
    private_dir_env,
    private_dir_inventory,
    write_private,
)

log = logging.getLogger(__name__)

MARKER_VAR = "PUSHBUTTON_RUN_MARKER"
CANCEL_POLL_SECONDS = 1.0
# Ansible's prompts, answered from the run's credentials (ansible-runner's `passwords`).
# ansible-runner looks for them in the last 100 characters of output only: ssh-add's
# "Enter passphrase for <private dir>/artifacts/run/ssh_key_data: " is matched by its end.
BECOME_PROMPT = r"^BECOME password[^\n]*:\s*$"
VAULT_PROMPT = r"^Vault password[^\n]*:\s*$"
PASSPHRASE_PROMPT = r"/ssh_key_data[^\n/]*:\s*$"  # noqa: S105 (a prompt, not a password)
# A version the playbook reports longer than the run's column holds is cut.
# ansible-runner's own settings: its loop comes back every 0.25 s (events are stored and
# cancels seen that often; its default is 5 s), and it keeps no copy of the output.
RUNNER_SETTINGS = {"pexpect_timeout": 0.25, "suppress_output_file": True}
# The run's first line names at most this many hosts of its inventory.
START_LINE_HOSTS = 10


class _Spawn(pexpect.spawn):
    """pexpect's child, closed without ptyprocess' pause when it has exited already.

    ansible-runner closes the child's terminal after the child has exited and was waited
    for (its loop runs while `isalive()`, then it reads to EOF). ptyprocess' close()
    sleeps `delayafterclose` (0.1 s) anyway, for a child that might still die of the
    hang-up: at the end of every run. A child still alive is closed as before."""

    def close(self, force=True):
        if not self.closed and not self.isalive():
            self.ptyproc.delayafterclose = 0
        super().close(force=force)


# ansible-runner spawns its child with `pexpect.spawn`; this module is its only user in
# the worker (the one module that imports ansible_runner).
pexpect.spawn = _Spawn


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


def execute(
    run,
    *,
    secret_values: dict,
    credentials: Sequence[dict] = (),
    cancel_requested: Callable[[], bool],
    heartbeat: Callable[[], bool | None],
    masker: SecretMasker | None = None,
    ended: Callable[[Outcome], None] | None = None,
) -> Outcome:
    """Run the pinned playbook of `run` and store its events; return how it ended.

    `cancel_requested` and `heartbeat` are called from the runner's loop and must
    not raise; a heartbeat that returns False is tried again a second later. `ended`
    hears the outcome as soon as the run's processes are gone and its events stored,
    before its private dir is removed (which no one waiting for the run need wait for).
    """
    private = private_dir_create(run.pk)
    marker = run.marker or f"{run.pk}-{uuid.uuid4().hex}"
    # One masker for the run: the worker's, which also masks what it logs and records.
    masker = masker or SecretMasker(run_secrets(secret_values, credentials))
    sink = EventSink(run.pk, masker=masker)
    loop = _RunnerLoop(run.timeout, marker, sink, cancel_requested, heartbeat)
    try:
        try:
            outcome = _play(run, private, marker, sink, loop, secret_values, credentials)
        finally:
            try:
                sink.flush()
            finally:
                # Before the dir goes: they would write on into it.
                run_processes_kill(marker, grace=1.0)
        if ended is not None:
            ended(outcome)
        return outcome
    finally:
        private.remove()


def _play(run, private, marker, sink, loop, secret_values, credentials) -> Outcome:
    """Prepare the private dir and run ansible-playbook in it: how the run ended."""
    try:
        # Fetching and exporting the playbook may take minutes (a clone): the
        # heartbeat must go on meanwhile, or a reaper would take the run for lost.
        with _beating(loop.heartbeat):
            _prepare(run, private, secret_values, credentials)
    # InventoryPathError is a ValueError.
    except (git.GitError, requirements.RequirementsError, ValueError) as exc:
        return Outcome(RunStatus.FAILED, error=sink.masker.text(str(exc)))
    if loop.cancel_requested():
        # Canceled, or no longer running (a reaper ended it): Ansible never starts.
        return Outcome(RunStatus.CANCELED)
    options = _runner_options(run, private, marker, credentials)
    sink.start(start_line(run), timezone.now())
    result = ansible_runner.run(
        private_data_dir=str(private.path),
        playbook=run.playbook_path,
        ident="run",
        quiet=True,
        suppress_env_files=True,
        settings=dict(RUNNER_SETTINGS),
        event_handler=sink.add,
        cancel_callback=loop.cancel_callback,
        status_handler=loop.status_handler,
        **options,
    )
    sink.flush()
    return _outcome(result, sink, loop.ended_by)


class _RunnerLoop:
    """ansible-runner's callbacks: they stop the run on cancel or timeout (its whole
    process tree), beat, and move the events on."""

    def __init__(self, timeout, marker, sink, cancel_requested, heartbeat) -> None:
        self.timeout, self.marker, self.sink = timeout, marker, sink
        self.cancel_requested, self.heartbeat = cancel_requested, heartbeat
        self.ended_by: str | None = None
        self.status = ""
        self.started = self.last_beat = time.monotonic()
        self.last_poll = 0.0

    def cancel_callback(self) -> bool:
        self.sink.tick()
        now = time.monotonic()
        if self.ended_by is None:
            if now - self.started > self.timeout:
                self.ended_by = RunStatus.TIMED_OUT
            elif now - self.last_poll >= CANCEL_POLL_SECONDS:
                self.last_poll = now
                if self.cancel_requested():
                    self.ended_by = RunStatus.CANCELED
            if now - self.last_beat >= settings.RUN_HEARTBEAT_SECONDS:
                beat = self.heartbeat()
                # A failed heartbeat (database away) is tried again a second later.
                self.last_beat = (
                    now if beat is not False else now - settings.RUN_HEARTBEAT_SECONDS + 1
                )
        if self.ended_by is not None:
            run_processes_kill(self.marker)
            return True
        return False

    def status_handler(self, status_data: dict, runner_config=None) -> None:
        # The `starting` status carries the command line and the whole environment:
        # only the status name is kept, nothing is logged or stored from the rest.
        self.status = str(status_data.get("status", ""))


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


def _runner_options(run, private: PrivateDir, marker: str, credentials: Sequence[dict]) -> dict:
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
    envvars = {
        **dict.fromkeys(settings.RUN_HIDDEN_ENV, ""),
        MARKER_VAR: marker,
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
        "ANSIBLE_FORCE_COLOR": "1",
        "ANSIBLE_HOST_KEY_CHECKING": "True" if settings.RUN_SSH_HOST_KEY_CHECKING else "False",
        # ssh-add must ask its passphrase on the terminal, not through a GUI helper.
        "DISPLAY": "",
        "SSH_ASKPASS": "",
        # Every file Ansible writes on the worker goes with the run.
        **private_dir_env(private),
        **_requirements_env(private),
    }
    options = {"envvars": envvars, "cmdline": shlex.join(args) if args else None}
    if run.inventory_path:
        # The portal's variables first, the repository's inventory after: what it sets wins.
        options["inventory"] = [
            str(private.path / "inventory" / "hosts.json"),
            str(private.path / "project" / run.inventory_path),
        ]
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


def start_line(run) -> str:
    """The run's first line, the portal's own: what it runs (the playbook at its commit,
    the hosts, a dry run) and on which worker; written as Ansible starts."""
    if run.inventory_path:
        hosts = f"the hosts of {run.inventory_path} (in the repository)"
    else:
        names = inventory_host_names(run.inventory)
        shown = ", ".join(names[:START_LINE_HOSTS]) or "no host"
        more = len(names) - START_LINE_HOSTS
        hosts = shown + (f" and {more} more" if more > 0 else "")
    dry = " (dry run: --check --diff)" if run.check_mode else ""
    return (
        f"Pushbutton runs {run.playbook_path} at commit {run.playbook_commit[:12]}{dry} "
        f"on {hosts}, from worker {run.worker or '?'}."
    )


def inventory_host_names(inventory: dict) -> list[str]:
    """The hosts an inventory (Ansible's YAML/JSON shape) names, in order, once each."""
    names: dict[str, None] = {}

    def visit(group: dict) -> None:
        names.update(dict.fromkeys(group.get("hosts") or {}))
        for child in (group.get("children") or {}).values():
            visit(child or {})

    for group in (inventory or {}).values():
        visit(group or {})
    return list(names)


def _requirements_env(private: PrivateDir) -> dict[str, str]:
    """Roles and collections come from the version's installed requirements, when it has
    some (a playbook's own roles/ and collections/ are found beside it as always)."""
    installed = private.path / "requirements"
    if not installed.is_dir():
        return {}
    return {
        "ANSIBLE_ROLES_PATH": str(installed / "roles"),
        "ANSIBLE_COLLECTIONS_PATH": str(installed / "collections"),
    }


def _project_export(run, private: PrivateDir) -> Path:
    """The pinned tree (submodules included) and the roles and collections its
    requirements installed, copied into the private dir and checked against the hash
    the run was launched with."""
    version = run.playbook_version
    source = version.source

    def export(dest: Path) -> None:
        commit = git.commit_fetch(source.url, source.mirror_path, run.playbook_commit)
        git.tree_export(
            source.mirror_path, commit, dest, url=source.url, mirrors=settings.SOURCES_DIR
        )

    project = private.path / "project"
    project.mkdir(mode=0o700)
    if not version.requirements:
        # Its hash is the tree's: a copy from the read-only cache of exported trees (made
        # from a fresh export once), checked against the hash at each copy.
        trees.tree_copy(run.content_hash, export, project)
        return project
    export(project)
    tree = git.tree_hash(project)
    installed_hash = None
    if lock := version.requirements:
        # Installed again from the pins when this worker lacks them: the hash tells.
        cached = requirements.requirements_install(
            lock, tree=project, mirrors=settings.SOURCES_DIR, cache=settings.REQUIREMENTS_DIR
        )
        installed = private.path / "requirements"
        shutil.copytree(cached, installed, symlinks=True)
        installed_hash = git.tree_hash(installed)
        if installed_hash != lock.get("hash"):
            raise ValueError(
                "The roles and collections installed from the requirements changed: expected "
                f"SHA-256 {lock.get('hash')}, found {installed_hash} (in {cached}: Ops may "
                "remove it to install it again)."
            )
    actual = requirements.content_hash(tree, installed_hash)
    if actual != run.content_hash:
        raise ValueError(
            f"The playbook content changed: expected SHA-256 {run.content_hash}, found {actual}."
        )
    return project


def _prepare(
    run, private: PrivateDir, secret_values: dict, credentials: Sequence[dict] = ()
) -> None:
    project = _project_export(run, private)
    playbook_path_check(project, run.playbook_path)
    # ansible-runner drops its `settings` argument when env/settings is missing (and
    # suppress_env_files keeps it from writing one): they are written here.
    write_private(private.path / "env" / "settings", json.dumps(RUNNER_SETTINGS))
    if run.inventory_path:
        # Kept in the repository: the exported tree's file, pinned by the hash just checked.
        inventory_path_check(project, run.inventory_path)
    write_private(
        private.path / "inventory" / "hosts.json",
        json.dumps(private_dir_inventory({} if run.inventory_path else run.inventory, private)),
    )
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
    write_private(
        private.path / "env" / "extravars",
        yaml.dump(_unsafe(extravars), Dumper=_ExtraVarsDumper, allow_unicode=True),
    )


def _outcome(result, sink: EventSink, ended_by: str | None) -> Outcome:
    outcome = Outcome(
        status=RunStatus.FAILED,
        rc=result.rc,
        host_summary=sink.host_summary,
        version=str(sink.artifact_data.get("version", "")),  # run_end cuts it to fit
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
