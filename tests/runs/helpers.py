"""Run-level test support: launching through the services, holding the queue, waiting
for the worker, a run's output written as the worker writes it, and the SSH target's
credentials. Rows without a launch: tests/factories.RunFactory; HTTP: tests/clients.py."""

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

from django.conf import settings

from apps.audit.constants import Via
from apps.environments.constants import CredentialKind
from apps.environments.services import credential_create
from apps.runs import services
from apps.runs.events import events_store
from apps.runs.models import Run, RunEvent
from tests.conftest import BASE, _database_url, wait_for


def queue_held():
    """While it lasts, nothing reaches the broker: launched runs stay queued (patch of
    the one place the services send tasks from)."""
    return mock.patch("apps.runs.services.lifecycle.task_send")


def launch(user, action, environment, parameters=None, *, service=None, **options) -> Run:
    """Launch through the one launch path, as the API does unless `options` (fields of
    LaunchRequest) say otherwise; `service` is the action's unless given."""
    return services.run_launch(
        services.LaunchRequest(
            user=user,
            service=service or action.service,
            action=action,
            environment=environment,
            parameters={} if parameters is None else parameters,
            **options,
        )
    )


def wait_final(run: Run, timeout: float = 120) -> Run:
    """Wait until the worker has ended the run; returns it refreshed."""

    def done():
        run.refresh_from_db()
        return run.is_final

    wait_for(done, timeout=timeout, message=f"run {run.pk} stayed {run.status}")
    return run


def wait_private_dirs_removed(timeout: float = 30) -> None:
    """Until no run's private dir is left: the worker removes a run's right after it
    wrote the final status."""
    wait_for(
        lambda: not list(settings.RUNS_TMP_DIR.iterdir()),
        timeout=timeout,
        message="a private data dir was left behind",
    )


# --- a run's output ---------------------------------------------------------------------
T0 = datetime(2026, 11, 27, 9, 30, 0, 250000, tzinfo=UTC)
RED, GREEN, RESET = "\x1b[0;31m", "\x1b[0;32m", "\x1b[0m"


class Log:
    """Events written as the runner's EventSink writes them: counters from 1, lines
    numbered on from the last event, one second apart."""

    def __init__(self, run: Run):
        self.run = run
        self.counter = 0
        self.line = 0

    def add(self, event: str, stdout: str = "", **fields) -> RunEvent:
        self.counter += 1
        # As ansible-runner counts them: the "\n" in what was printed, which ended with one.
        lines = stdout.count("\n") + 1 if stdout else 0
        row = RunEvent(
            run=self.run,
            counter=self.counter,
            event=event,
            created=T0 + timedelta(seconds=self.counter),
            start_line=self.line,
            end_line=self.line + lines,
            stdout=stdout,
            **fields,
        )
        events_store(self.run.pk, [row])
        self.line += lines
        self.run.refresh_from_db()
        return RunEvent.objects.get(run=self.run, counter=self.counter)

    def lines(self, count: int, per_event: int = 4, text="line {n}") -> None:
        """`count` numbered lines, `per_event` to an event."""
        batch = []
        while count > 0:
            take = min(per_event, count)
            self.counter += 1
            stdout = "\r\n".join(text.format(n=self.line + i + 1) for i in range(take))
            batch.append(
                RunEvent(
                    run=self.run,
                    counter=self.counter,
                    event="runner_on_ok",
                    created=T0,
                    start_line=self.line,
                    end_line=self.line + take,
                    stdout=stdout,
                )
            )
            self.line += take
            count -= take
        for start in range(0, len(batch), 5000):
            events_store(self.run.pk, batch[start : start + 5000])
        self.run.refresh_from_db()


# --- the SSH target (tests/conftest.ssh_target) ------------------------------------------
def ssh_credentials(ssh_target, environment, ops, *, token: str, become: str) -> list:
    """Every kind of credential, attached to `environment`, as Ops would set them."""
    common = {"environments": [environment], "acting_user": ops, "via": Via.ADMIN}
    return [
        credential_create(
            name="deploy key",
            kind=CredentialKind.SSH_KEY,
            value=ssh_target.private_key,
            passphrase=ssh_target.passphrase,
            **common,
        ),
        credential_create(
            name="become", kind=CredentialKind.BECOME_PASSWORD, value=become, **common
        ),
        credential_create(
            name="vault",
            kind=CredentialKind.VAULT_PASSWORD,
            value=ssh_target.vault_password,
            **common,
        ),
        credential_create(
            name="api token",
            kind=CredentialKind.SECRET_VARIABLE,
            variable="api_token",
            value=token,
            **common,
        ),
    ]


# --- workers of a test's own (tests/conftest.celery_worker is the session's) ---------
def start_worker(
    log: Path, *, name: str, queue: str, beat: bool = False, concurrency: int = 1, **env
):
    """A real `celery worker` (its own process group) on the test database, once ready."""
    command = [
        str(Path(sys.executable).parent / "celery"), "-A", "portal", "worker",
        "-Q", queue, "--concurrency", str(concurrency), "-n", name, "--loglevel", "INFO",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    if beat:
        command += ["--beat", "--schedule", str(log.with_suffix(".schedule"))]
    output = open(log, "a")  # noqa: SIM115 (the worker writes it for its whole life)
    proc = subprocess.Popen(
        command,
        cwd=BASE,
        env={**os.environ, "DATABASE_URL": _database_url(), **env},
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    ready = log.read_text().count("ready.") + 1
    wait_for(
        lambda: log.read_text().count("ready.") >= ready or proc.poll() is not None,
        timeout=90,
        interval=0.1,
    )
    assert proc.poll() is None, f"The worker did not start:\n{log.read_text()}"
    return SimpleNamespace(process=proc, log=log)


def stop_worker(worker) -> None:
    # Throwaway workers with nothing left to do: no need for a warm shutdown.
    if worker.process.poll() is None:
        os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait()
