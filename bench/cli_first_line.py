"""`pushbutton deploy --wait`: how soon the first log line reaches the terminal.

For each backend, in a process of its own, this script loads the demo, starts the portal
(gunicorn) and a Celery worker, then runs the installed `pushbutton deploy hello-web
VERSION --to test --wait` as a CI job would, `--repeat` times, reading its output as it
comes. For each deploy it prints:

- **launch → first line**: from starting the command to its first log line;
- **run start → first line**: from the run's `started_at` (written by the worker when it
  takes the run) to that line on the terminal. Target: **< 1 s**. That line is the
  portal's own (what runs where, written as ansible-playbook is started), so it also
  prints:
- **printed → terminal**: from the moment that line was written (its event's `created`)
  to the line on the terminal: what the portal and the command (it asks every 0.1 s
  until the first line) add to it;
- **start → Ansible's first line**: when Ansible itself printed (ansible-playbook
  starting: Python, Ansible, the playbook), for comparison.

    .venv/bin/python bench/cli_first_line.py [--repeat 5] [--only sqlite|postgres]
                                             [--pg-broker redis://...|filesystem]
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import benchlib

TARGET = 1.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def portal_start(port: int, log_path: Path) -> subprocess.Popen:
    """gunicorn on 127.0.0.1:`port`, once it answers."""
    from django.conf import settings

    log = open(log_path, "w")  # noqa: SIM115 (gunicorn writes it for its whole life)
    proc = subprocess.Popen(
        [str(benchlib.BIN / "gunicorn"), "portal.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", "2", "--chdir", str(benchlib.BASE)],
        cwd=settings.VAR_DIR, env=benchlib.python_path_env(), stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"gunicorn did not start:\n{log_path.read_text()}")
        time.sleep(0.2)


def deploy(env: dict, version: str) -> tuple[float, float | None, int]:
    """Run `pushbutton deploy --wait`: (its start, its first log line, the run), epoch s."""
    started = time.time()
    proc = subprocess.Popen(
        [str(benchlib.BIN / "pushbutton"), "deploy", "hello-web", version, "--to", "test",
         "--wait", "--timeout", "300", "--idempotency-key", f"bench-{uuid.uuid4().hex}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
    )  # fmt: skip
    first, run_id = None, 0
    for line in proc.stdout:
        if line.startswith("Run #") and not run_id:
            run_id = int(line.split("#", 1)[1].split(":", 1)[0])
        elif first is None and line.strip():
            first = time.time()
    proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"pushbutton exited {proc.returncode}: {proc.stderr.read()}")
    return started, first, run_id


def backend_main(args) -> None:
    # Stopped (Ctrl-C, a timeout), it still stops the portal and the worker it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    benchlib.django_setup()
    from django.conf import settings
    from django.core.management import call_command

    from apps.accounts.models import User
    from apps.accounts.services import token_create
    from apps.environments.models import Environment
    from apps.runs.constants import ACTIVE_STATUSES, RunStatus
    from apps.runs.events import START_EVENT
    from apps.runs.models import Run, RunEvent
    from apps.runs.services import run_end

    backend = benchlib.backend_label()
    call_command("load_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    # Each invocation has a queue of its own; the demo's environments were made with the
    # first one's.
    Environment.objects.update(queue=settings.CELERY_TASK_DEFAULT_QUEUE)
    # A run an interrupted invocation left going would hold the deploy lock of test.
    for left in Run.objects.filter(status__in=ACTIVE_STATUSES):
        run_end(run=left, status=RunStatus.CANCELED, error="Left going by an interrupted bench.")
    _, key = token_create(user=User.objects.get(username="dev"), name="bench", acting_user=None,
                          via="cli")  # fmt: skip
    port = _free_port()
    web = portal_start(port, settings.VAR_DIR / "bench-cli-gunicorn.log")
    worker = None
    env = {**os.environ, "PUSHBUTTON_URL": f"http://127.0.0.1:{port}", "PUSHBUTTON_TOKEN": key}
    reps = []
    try:
        worker = benchlib.worker_start(settings.VAR_DIR / "bench-cli-worker.log")
        for rep in range(1, args.repeat + 1):
            load = os.getloadavg()[0]
            started, first, run_id = deploy(env, f"9.{int(time.time())}.{rep}")
            run = Run.objects.get(pk=run_id)
            run_start = run.started_at.timestamp()
            lines = RunEvent.objects.filter(run=run).exclude(stdout="").order_by("counter")
            printed = lines.first().created.timestamp()
            ansible = lines.exclude(event=START_EVENT).first().created.timestamp()
            reps.append(
                {
                    "launch": first - started,
                    "after_start": first - run_start,
                    "ansible": ansible - run_start,
                    "printed": first - printed,
                    "queued": run_start - run.created_at.timestamp(),
                    "load": load,
                }
            )
            print(
                f"[{backend}] rep {rep}: run #{run_id}, launch → first line "
                f"{first - started:.2f} s, run start → first line {first - run_start:.2f} s "
                f"(written {printed - run_start:.2f} s after the start, on the terminal "
                f"{first - printed:.2f} s later; Ansible's first line "
                f"{ansible - run_start:.2f} s after the start; queued "
                f"{reps[-1]['queued']:.2f} s); load {load:.1f}",
                flush=True,
            )
    finally:
        if worker is not None:
            benchlib.worker_stop(worker)
        benchlib.worker_stop(web)
    Path(args.result).write_text(json.dumps({"backend": backend, "reps": reps}))


def main(args) -> int:
    if not (benchlib.BIN / "pushbutton").exists():
        print("pushbutton is not installed: `make .venv/.installed` installs it.", file=sys.stderr)
        return 1
    rows = []
    for backend in [args.only] if args.only else list(benchlib.BACKENDS):
        env = benchlib.backend_env(
            backend, name="cli", broker=args.pg_broker if backend == "postgres" else ""
        )
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            options = ["--result", out.name, "--repeat", str(args.repeat)]
            done = benchlib.backend_run(str(Path(__file__).resolve()), backend, env, options)
            if done.returncode != 0:
                print(f"{backend}: the bench process failed ({done.returncode}).", file=sys.stderr)
                return done.returncode
            result = json.loads(Path(out.name).read_text())
        reps = result["reps"]
        rows.append(
            [
                result["backend"],
                f"{benchlib.median([r['launch'] for r in reps]):.2f}",
                f"{benchlib.median([r['after_start'] for r in reps]):.2f}",
                f"{max(r['after_start'] for r in reps):.2f}",
                f"{benchlib.median([r['printed'] for r in reps]):.2f}",
                f"{benchlib.median([r['ansible'] for r in reps]):.2f}",
                f"{benchlib.median([r['load'] for r in reps]):.1f}",
            ]
        )
    print(
        f"\n`pushbutton deploy --wait`: its first log line, median of {args.repeat} "
        f"(target: run start → first line < {TARGET:.0f} s)\n"
    )
    headers = [
        "backend", "launch → line s", "run start → line s", "worst s",
        "printed → terminal s", "start → Ansible's line s", "load",
    ]  # fmt: skip
    print(benchlib.table(headers, rows))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", choices=benchlib.BACKENDS)
    parser.add_argument(
        "--pg-broker",
        default="",
        help=f"broker for the PostgreSQL run (default {benchlib.REDIS_URL}; 'filesystem')",
    )
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.backend:
        backend_main(args)
    else:
        sys.exit(main(args))
