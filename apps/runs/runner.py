"""The ansible-runner executor: the only module that imports ansible_runner.

Each run gets a fresh private data dir (0700) holding the project files of the
pinned commit, the environment's inventory and the extra vars. It is removed
in `finally`, with the artifacts ansible-runner keeps there.
"""

import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import ansible_runner
import psutil
import yaml
from django.conf import settings

from apps.catalog import git
from apps.runs.constants import RunStatus
from apps.runs.events import EventSink

log = logging.getLogger(__name__)

MARKER_VAR = "PUSHBUTTON_RUN_MARKER"
CANCEL_POLL_SECONDS = 1.0


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


def execute(
    run,
    *,
    secret_values: dict,
    cancel_requested: Callable[[], bool],
    heartbeat: Callable[[], None],
) -> Outcome:
    """Run the pinned playbook of `run` and store its events; return how it ended."""
    settings.RUNS_TMP_DIR.mkdir(parents=True, exist_ok=True)
    private = Path(tempfile.mkdtemp(prefix=f"run-{run.pk}-", dir=settings.RUNS_TMP_DIR))
    marker = f"{run.pk}-{uuid.uuid4().hex}"
    sink = EventSink(run.pk, secrets=[v for v in secret_values.values() if isinstance(v, str)])
    state = {"ended_by": None, "last_poll": 0.0, "last_beat": 0.0, "started": time.monotonic()}

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
            if now - state["last_beat"] >= 10:
                state["last_beat"] = now
                heartbeat()
        if state["ended_by"] is not None:
            run_processes_kill(marker)
            return True
        return False

    try:
        try:
            _prepare(run, private, secret_values)
        except (git.GitError, ValueError) as exc:
            return Outcome(RunStatus.FAILED, error=str(exc))
        result = ansible_runner.run(
            private_data_dir=str(private),
            playbook=run.playbook_path,
            ident="run",
            quiet=True,
            cmdline="--check --diff" if run.check_mode else None,
            envvars={
                MARKER_VAR: marker,
                "PATH": os.pathsep.join(
                    [os.path.dirname(sys.executable), os.environ.get("PATH", "")]
                ),
                "ANSIBLE_FORCE_COLOR": "1",
                "ANSIBLE_RETRY_FILES_ENABLED": "0",
            },
            settings={"pexpect_timeout": 0.25},
            event_handler=sink.add,
            cancel_callback=cancel_callback,
            status_handler=lambda status, runner_config: None,
        )
        sink.flush()
        return _outcome(result, sink, state["ended_by"])
    finally:
        sink.flush()
        run_processes_kill(marker, grace=1.0)
        shutil.rmtree(private, ignore_errors=True)


def _prepare(run, private: Path, secret_values: dict) -> None:
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
    _write_private(private / "inventory" / "hosts.json", json.dumps(_inventory(run.inventory)))
    extravars = {
        **run.parameters,
        **secret_values,
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
        version=str(sink.artifact_data.get("version", "")),
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
