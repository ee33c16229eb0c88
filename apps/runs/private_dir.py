"""A run's private dir: where every file Ansible and ansible-runner write on the worker
goes, so that all of it goes with the run.

ansible-runner keeps its inputs and artifacts there (env/extravars, the command line
and environment in artifacts/run/command, job events, the fact cache, the FIFO that
hands the SSH key to ssh-agent). Its tmp/ holds the rest: TMPDIR (the ssh-agent socket,
modules' scratch files), Ansible's local temp, SSH control sockets, persistent
connection sockets, and the remote temp and async dir of hosts reached over a local
connection (the "remote" side is this machine). Pipelining is on, so modules and their
arguments reach any host through the connection instead of a file in its remote temp;
Ansible's own log file and the files it may be told to keep are turned off.

The dir is removed when the run ends; a run whose worker died is cleaned up by the
reaper or the restarted worker (`private_dirs_remove`).
"""

import glob
import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

# Unix socket paths have 107 bytes at most: ssh-agent's socket under TMPDIR
# ("ssh-XXXXXXXXXX/agent.<pid>") and SSH control sockets ("cp/" and a 40-character
# hash) must fit under the run's tmp.
MAX_TMP_CHARS = 60
# Connection names that run modules on the worker itself.
LOCAL_CONNECTIONS = ("local", "ansible.builtin.local", "ansible.legacy.local")


@dataclass(frozen=True)
class PrivateDir:
    path: Path
    tmp: Path

    def remove(self) -> None:
        for path in (self.path, self.tmp):
            shutil.rmtree(path, ignore_errors=True)


def _short_tmp_prefix(run_id: int) -> str:
    # Named after this installation's RUNS_TMP_DIR too: the system's temp dir may be
    # shared with another portal, whose run of the same id is not ours to remove.
    installation = hashlib.sha256(str(settings.RUNS_TMP_DIR).encode()).hexdigest()[:8]
    return f"pushbutton-{installation}-run-{int(run_id)}-"


def private_dir_create(run_id: int) -> PrivateDir:
    """A fresh private dir (0700) for run `run_id`, and its tmp: inside it, or, when its
    path is too long for sockets, a fresh dir of its own in the system's temp dir."""
    settings.RUNS_TMP_DIR.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"run-{int(run_id)}-", dir=settings.RUNS_TMP_DIR))
    tmp = path / "tmp"
    if len(str(tmp)) <= MAX_TMP_CHARS:
        tmp.mkdir(mode=0o700)
    else:
        tmp = Path(tempfile.mkdtemp(prefix=_short_tmp_prefix(run_id)))
    return PrivateDir(path=path, tmp=tmp)


def private_dirs(run_id: int) -> list[Path]:
    """The private dirs (and tmp dirs of their own) of run `run_id` on this host."""
    patterns = [
        str(settings.RUNS_TMP_DIR / f"run-{int(run_id)}-*"),
        os.path.join(tempfile.gettempdir(), f"{_short_tmp_prefix(run_id)}*"),
    ]
    return [Path(path) for pattern in patterns for path in glob.glob(pattern)]


def private_dirs_remove(run_id: int) -> int:
    """Remove what a run left on this host (its worker died before its `finally`)."""
    found = private_dirs(run_id)
    for path in found:
        shutil.rmtree(path, ignore_errors=True)
    return len(found)


def private_dir_env(private: PrivateDir) -> dict[str, str]:
    """Environment variables that keep Ansible's files on the worker inside `private`."""
    return {
        "TMPDIR": str(private.tmp),
        "ANSIBLE_LOCAL_TEMP": str(private.tmp / "local"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(private.tmp / "cp"),
        "ANSIBLE_PERSISTENT_CONTROL_PATH_DIR": str(private.tmp / "pc"),
        # Modules and their arguments go through the connection, not a file on the host;
        # and no ansible.cfg may keep the files Ansible leaves there (which also stops
        # pipelining).
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_KEEP_REMOTE_FILES": "False",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        # Ansible's own log would hold the output unmasked: the run's events keep it.
        "ANSIBLE_LOG_PATH": os.devnull,
    }


def private_dir_inventory(inventory: dict, private: PrivateDir) -> dict:
    """The environment's inventory for a run: hosts reached over a local connection use
    the worker's own Python, and their remote temp and async dir are in `private`.

    The connection is checked when each task runs, so it holds for inventory hosts,
    the implicit localhost and `delegate_to: localhost` alike; other hosts keep
    Ansible's setting (the remote user's ~/.ansible/tmp on the host). An inventory
    that sets ansible_remote_tmp itself keeps its value."""
    inventory = json.loads(json.dumps(inventory))

    def visit(group: dict) -> None:
        for host_vars in (group.get("hosts") or {}).values():
            if host_vars is not None and host_vars.get("ansible_connection") == "local":
                host_vars.setdefault("ansible_python_interpreter", sys.executable)
        for child in (group.get("children") or {}).values():
            visit(child or {})

    for group in inventory.values():
        visit(group or {})
    everyone = inventory.setdefault("all", {}) or {}
    inventory["all"] = everyone
    group_vars = everyone.setdefault("vars", {}) or {}
    everyone["vars"] = group_vars
    for name, sub in (("ansible_remote_tmp", "remote"), ("ansible_async_dir", "async")):
        group_vars.setdefault(name, _if_local(str(private.tmp / sub)))
    return inventory


def _if_local(path: str) -> str:
    """A template: `path` for a host reached over a local connection, else Ansible's own
    setting (an omitted variable)."""
    local = json.dumps(list(LOCAL_CONNECTIONS))
    return (
        f"{{{{ {json.dumps(path)} if (ansible_connection | default('')) in {local} else omit }}}}"
    )


def write_private(path: Path, content: str) -> None:
    """Write a file only the worker's user may read (0600, in a 0700 dir)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
