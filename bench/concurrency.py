"""50 concurrent launches of one deploy through the API: how many ran, how many were
refused, and proof that none ran in parallel and none was lost.

For each backend (SQLite with the filesystem broker; PostgreSQL with Redis), in a
process of its own: a real gunicorn serving the API on loopback, a real Celery
worker with two pool processes (so two runs could overlap if the lock let them),
and N client threads, each with an API token of its own, that POST the same
action of the same service on the same environment to /api/v1/runs/:

- burst: all N at the same instant (a barrier);
- spread: each client at a random moment within --spread seconds, so launches
  arrive while a run is going and after it has ended.

The lock refuses rather than queues: a launch is 201 (it will run) or 409 (naming
the run that holds the lock). Each run's playbook appends "start" and "end" lines
to a journal on the target; the bench then checks that

- every 201 has a run, and every run ended successful: none queued, running or lost;
- the journal holds one start and one end per run, never a start inside another
  run's start..end (nothing ran in parallel), and the runs' own started/finished
  times do not overlap either;
- every 409 named a run that exists.

    .venv/bin/python bench/concurrency.py [--clients 50] [--spread 30] [--only postgres]
"""

import argparse
import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import benchlib

PLAYBOOK = """---
- name: Deploy, keeping a journal of who is deploying
  hosts: all
  gather_facts: false
  tasks:
    - name: Say it starts
      ansible.builtin.shell: echo "start {{ pushbutton_run_id }} $(date +%s.%N)" >> "{{ journal }}"
      changed_when: true

    - name: Deploy (takes a moment)
      ansible.builtin.command:
        argv: [sleep, "1"]
      changed_when: true

    - name: Say it ends
      ansible.builtin.shell: echo "end {{ pushbutton_run_id }} $(date +%s.%N)" >> "{{ journal }}"
      changed_when: true
"""
POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/pushbutton_bench_concurrency"


def say(text: str) -> None:
    print(text, flush=True)


# --- in the backend's own process ------------------------------------------------------
def fixtures(journal: Path):
    """An approved deploy action of service bench-lock on environment bench-lock."""
    from django.conf import settings
    from django.utils import timezone

    from apps.accounts.models import Role, User
    from apps.audit.constants import Via
    from apps.catalog.models import Action, PlaybookSource, Service
    from apps.catalog.services import playbook_version_approve, source_sync
    from apps.environments.models import Environment
    from apps.runs.constants import ACTIVE_STATUSES, RunStatus
    from apps.runs.models import Run

    repo = settings.VAR_DIR / "bench-concurrency-playbooks"
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "deploy.yml").write_text(PLAYBOOK)
    git = ["git", "-C", str(repo), "-c", "user.name=bench", "-c", "user.email=b@example.com"]
    if not (repo / ".git").exists():
        subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "bench"], check=True)
    source, _ = PlaybookSource.objects.get_or_create(
        name="bench-concurrency", defaults={"url": str(repo)}
    )
    source_sync(source=source, acting_user=None, via=Via.CLI)
    version = source.versions.filter(path="deploy.yml").order_by("-created_at").first()
    if not version.is_approved:
        playbook_version_approve(version=version, acting_user=None, via=Via.CLI)
    service, _ = Service.objects.get_or_create(slug="bench-lock", defaults={"name": "bench-lock"})
    environment, _ = Environment.objects.update_or_create(
        slug="bench-lock",
        defaults={
            "name": "Bench lock",
            "order": 1002,
            "queue": settings.CELERY_TASK_DEFAULT_QUEUE,
            "inventory": {
                "all": {
                    "hosts": {"localhost": {"ansible_connection": "local"}},
                    "vars": {"journal": str(journal)},
                }
            },
        },
    )
    action, _ = Action.objects.update_or_create(
        service=service,
        slug="deploy",
        defaults={"label": "Deploy", "playbook_version": version, "timeout": 300},
    )
    action.environments.set([environment])
    user, _ = User.objects.get_or_create(
        username="bench-ci", defaults={"role": Role.OPS, "is_superuser": True, "is_staff": True}
    )
    # Runs an earlier, interrupted bench left must not hold the lock now.
    Run.objects.filter(service=service, environment=environment, status__in=ACTIVE_STATUSES).update(
        status=RunStatus.CANCELED, finished_at=timezone.now()
    )
    return service, environment, action, user


def tokens(user, count: int) -> list[str]:
    from apps.accounts.services import token_create

    return [
        token_create(user=user, name=f"ci-{uuid.uuid4().hex[:8]}", acting_user=None, via="cli")[1]
        for _ in range(count)
    ]


def start_process(command: list[str], log: Path) -> subprocess.Popen:
    from django.conf import settings

    return subprocess.Popen(
        command,
        cwd=settings.VAR_DIR,
        env=benchlib.python_path_env(),
        stdout=open(log, "w"),  # written for the process's whole life
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"Timed out waiting for {what}")
        time.sleep(0.2)


def launch(url: str, key: str, body: bytes) -> tuple[int, dict, float]:
    request = urllib.request.Request(  # noqa: S310 (our own server on loopback)
        f"{url}/api/v1/runs/",
        data=body,
        method="POST",
        headers={"Authorization": f"Token {key}", "Content-Type": "application/json"},
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (loopback)
            return response.status, json.loads(response.read()), time.monotonic() - started
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}"), time.monotonic() - started


def phase(name: str, url: str, keys: list[str], spread: float, service, environment, journal):
    from apps.runs.constants import FINAL_STATUSES
    from apps.runs.models import Run

    journal.write_text("")
    before = set(Run.objects.filter(service=service).values_list("pk", flat=True))
    body = json.dumps(
        {"service": service.slug, "action": "deploy", "environment": environment.slug}
    ).encode()
    barrier = threading.Barrier(len(keys))
    answers: list = [None] * len(keys)

    def client(index: int) -> None:
        delay = random.uniform(0, spread) if spread else 0
        barrier.wait()
        time.sleep(delay)
        answers[index] = launch(url, keys[index], body)

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(keys))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    accepted = [a[1]["id"] for a in answers if a[0] == 201]
    refused = [a for a in answers if a[0] == 409]
    others = [a for a in answers if a[0] not in (201, 409)]

    def ended() -> bool:
        return not Run.objects.filter(pk__in=accepted).exclude(status__in=FINAL_STATUSES).exists()

    wait_until(ended, 300, "the accepted runs to end")
    elapsed = time.monotonic() - started
    runs = list(Run.objects.filter(service=service).exclude(pk__in=before).order_by("started_at"))
    problems = []
    if sorted(r.pk for r in runs) != sorted(accepted):
        problems.append(f"runs {sorted(r.pk for r in runs)} != accepted {sorted(accepted)}")
    not_ok = [f"#{r.pk} {r.status}" for r in runs if r.status != "successful"]
    if not_ok:
        problems.append("not successful: " + ", ".join(not_ok))
    lines = [line.split() for line in journal.read_text().splitlines()]
    going, most = set(), 0
    for word, run_id, _ in lines:
        if word == "start":
            going.add(run_id)
        else:
            going.discard(run_id)
        most = max(most, len(going))
    if most > 1:
        problems.append(f"{most} runs deployed at the same time")
    if sorted(lines_id for _, lines_id, _ in lines) != sorted(
        [str(r.pk) for r in runs if r.status == "successful"] * 2
    ):
        problems.append("the journal does not hold one start and one end per run")
    for earlier, later in itertools.pairwise(runs):
        if later.started_at < earlier.finished_at:
            problems.append(f"#{later.pk} started before #{earlier.pk} ended")
    holders = {a[1].get("lock", {}).get("run") for a in refused}
    if not holders <= {r.pk for r in runs}:
        problems.append(f"409s named runs that do not exist: {holders}")
    latencies = sorted(a[2] for a in answers)
    return {
        "phase": name,
        "clients": len(keys),
        "ran": len(accepted),
        "refused": len(refused),
        "queued": 0,
        "other": [a[:2] for a in others],
        "lost": sum(r.status == "lost" for r in runs),
        "most_at_once": most,
        "elapsed": elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "max_ms": latencies[-1] * 1000,
        "problems": problems,
    }


def backend_main(args) -> None:
    benchlib.django_setup()
    from django.conf import settings
    from django.db import connection

    journal = settings.VAR_DIR / "bench-concurrency-journal.txt"
    service, environment, _, user = fixtures(journal)
    keys = tokens(user, args.clients)
    logs = settings.VAR_DIR / "bench-concurrency-logs"
    logs.mkdir(exist_ok=True)
    port = free_port()
    bin_dir = Path(sys.executable).parent
    worker = start_process(
        [
            str(bin_dir / "celery"), "-A", "portal", "worker", "-Q",
            f"{settings.CELERY_TASK_DEFAULT_QUEUE},{settings.CELERY_HOUSEKEEPING_QUEUE}",
            "--concurrency", "2", "-n",
            f"bench-lock-{uuid.uuid4().hex[:8]}@%h", "--loglevel", "INFO",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ],
        logs / "worker.log",
    )  # fmt: skip
    web = start_process(
        [
            str(bin_dir / "gunicorn"), "portal.wsgi", "--bind", f"127.0.0.1:{port}",
            "--workers", "2", "--threads", "16", "--graceful-timeout", "5",
        ],
        logs / "web.log",
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: "ready." in (logs / "worker.log").read_text(), 90, "the worker")
        wait_until(lambda: _answers(url), 60, "gunicorn")
        connection.close()
        results = [
            phase("burst", url, keys, 0, service, environment, journal),
            phase(
                f"spread {args.spread:g} s", url, keys, args.spread, service, environment, journal
            ),
        ]
    finally:
        for proc in (web, worker):
            proc.terminate()
        for proc in (web, worker):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    backend = "postgres" if connection.vendor == "postgresql" else connection.vendor
    broker = settings.CELERY_BROKER_URL.split(":")[0]
    Path(args.result).write_text(
        json.dumps({"backend": backend, "broker": broker, "phases": results})
    )


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(f"{url}/accounts/login/", timeout=2)  # noqa: S310 (loopback)
    except (urllib.error.URLError, OSError):
        return False
    return True


# --- the driver ----------------------------------------------------------------------
def database_drop(url: str) -> None:
    import dj_database_url
    import psycopg
    from psycopg import sql

    db = dj_database_url.parse(url)
    with psycopg.connect(
        dbname="postgres",
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"] or "postgres",
        password=db["PASSWORD"] or None,
        autocommit=True,
    ) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(db["NAME"])))


def main(args) -> int:
    backends = [args.only] if args.only else list(benchlib.BACKENDS)
    rows, failed = [], False
    for backend in backends:
        env = benchlib.backend_env(backend, name="concurrency")
        # A fresh database and var/ each time: nothing of an earlier bench (or schema) stays.
        env["VAR_DIR"] = str(benchlib.BASE / "var" / f"bench-concurrency-{backend}")
        shutil.rmtree(env["VAR_DIR"], ignore_errors=True)
        if backend == "postgres":
            env["DATABASE_URL"] = os.environ.get("BENCH_CONCURRENCY_POSTGRES_URL", POSTGRES_URL)
            database_drop(env["DATABASE_URL"])
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            options = ["--result", out.name, "--clients", str(args.clients)]
            options += ["--spread", str(args.spread)]
            done = benchlib.backend_run(str(Path(__file__).resolve()), backend, env, options)
            if done.returncode != 0:
                print(f"{backend}: the bench process failed ({done.returncode}).", file=sys.stderr)
                return done.returncode
            result = json.loads(Path(out.name).read_text())
        for p in result["phases"]:
            failed |= bool(p["problems"] or p["other"])
            rows.append(
                [
                    result["backend"], result["broker"], p["phase"], p["clients"], p["ran"],
                    p["refused"], p["queued"], len(p["other"]), p["lost"], p["most_at_once"],
                    f"{p['p50_ms']:.0f}", f"{p['max_ms']:.0f}", f"{p['elapsed']:.1f}",
                    "ok" if not (p["problems"] or p["other"]) else "; ".join(p["problems"]),
                ]
            )  # fmt: skip
            for other in p["other"]:
                print(f"  unexpected answer: {other}", file=sys.stderr)
    print(
        f"\n{args.clients} concurrent launches of one deploy (one service, one environment) "
        "through the API; the lock refuses (409), it does not queue\n"
    )
    headers = [
        "backend", "broker", "phase", "launches", "ran", "refused 409", "queued", "other",
        "lost", "most at once", "p50 ms", "max ms", "wall s", "checks",
    ]  # fmt: skip
    print(benchlib.table(headers, rows))
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--spread", type=float, default=30, help="seconds of the spread phase")
    parser.add_argument("--only", choices=benchlib.BACKENDS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.backend:
        backend_main(args)
    else:
        sys.exit(main(args))
