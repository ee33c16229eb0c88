"""Launches per second the API accepts, and how fast it reads a run back.

On PostgreSQL with the Redis broker (the production shape), in a process of its own,
this script starts the portal under gunicorn as deploy/pushbutton-web.service does
(`--workers` 4, two per core on the 2-core machine, each with `--threads` 4) and drives
it from this process with asyncio and httpx (at most `--clients` connections at once),
each launch with an API token of a CI user (one token per client) and an
Idempotency-Key, as `pushbutton deploy` sends them:

- **launch**: `POST /api/v1/runs/` of the deploy action of 200 services (`--services`)
  on one environment, `--clients` (default 50) at once. A service's second deploy would
  meet the deploy lock (no worker takes the runs), so each round launches every service
  once, in a shuffled order, and the runs are ended between rounds (outside the time).
  `--mode queue` instead sends `"when_locked": "queue"` and never ends them: a service's
  later deploys wait behind its first (status `waiting`). Prints the launches accepted
  per second, p50/p99 latency and the count of each status. Target: **>= 100/s**.
- **read**: `GET /api/v1/runs/{id}/` of the runs just created, by 50 clients at once
  (`--readers`) for `--read-seconds`: back to back, then each client pausing
  `--read-pause` (1 s, as `pushbutton wait` polls) after each answer. Target: **p99 <
  50 ms**.

Each phase prints the load average it ran under and the CPU this process (the load
generator), the gunicorn workers and PostgreSQL's server processes (when they outlive a
request: `DB_CONN_MAX_AGE`, 60 s unless `--conn-max-age` says) took, per request. Then,
in-process (Django's test client): the queries of one launch and one read, the broker
check's time, one launch at a time.
`--profile` adds a pyinstrument (or cProfile) profile of in-process launches.

    .venv/bin/python bench/launch.py [--repeat 3] [--rounds 3] [--clients 50]
        [--workers 4] [--threads 4] [--conn-max-age 0] [--mode rounds|queue]
        [--broker redis://127.0.0.1:6379/0]
        [--database postgres://postgres@127.0.0.1:5432/pushbutton_bench_launch]
"""

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import benchlib

TARGET_LAUNCHES = 100.0  # accepted per second
TARGET_READ_P99 = 0.050  # seconds
POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/pushbutton_bench_launch"
ENVIRONMENT = "bench-launch"
VERSION_FIELD = {"name": "version", "label": "Version", "type": "string", "required": True}


def say(text: str) -> None:
    print(text, flush=True)


# --- fixtures, in the backend's own process ---------------------------------------------
def fixtures(count: int):
    """`count` services, each with an approved deploy action on environment bench-launch
    (no promotion rule), and a CI user whose team may run every service there."""
    from django.conf import settings
    from django.utils import timezone

    from apps.accounts.models import Grant, Right, Role, Team, User
    from apps.catalog.constants import ActionKind
    from apps.catalog.models import Action, PlaybookSource, PlaybookVersion, Service
    from apps.environments.models import Environment

    source, _ = PlaybookSource.objects.get_or_create(
        name="bench-launch", defaults={"url": "/nonexistent"}
    )
    version, _ = PlaybookVersion.objects.get_or_create(
        source=source,
        commit="b" * 40,
        path="deploy.yml",
        defaults={"content_hash": "0" * 64, "approved_at": timezone.now()},
    )
    environment, _ = Environment.objects.update_or_create(
        slug=ENVIRONMENT,
        defaults={
            "name": "Bench launch",
            "order": 1003,
            "queue": settings.CELERY_TASK_DEFAULT_QUEUE,
            "inventory": {"all": {"hosts": {"localhost": {"ansible_connection": "local"}}}},
        },
    )
    worker_stand_in()
    team, _ = Team.objects.get_or_create(slug="bench-launch", defaults={"name": "Bench launch"})
    Grant.objects.get_or_create(team=team, service=None, environment=environment, right=Right.RUN)
    user, _ = User.objects.get_or_create(
        username="bench-launch-ci", defaults={"role": Role.DEVELOPER}
    )
    team.memberships.get_or_create(user=user)
    slugs = []
    for index in range(count):
        slug = f"bench-launch-{index:03d}"
        service, _ = Service.objects.get_or_create(slug=slug, defaults={"name": slug})
        action, _ = Action.objects.update_or_create(
            service=service,
            slug="deploy",
            defaults={
                "label": "Deploy",
                "kind": ActionKind.DEPLOY,
                "playbook_version": version,
                "timeout": 300,
                "form": [VERSION_FIELD],
                "version_field": "version",
            },
        )
        action.environments.add(environment)
        slugs.append(slug)
    return environment, user, slugs


def runs_end(environment) -> int:
    """End every run still queued or waiting on the bench environment (no worker takes
    them), so the next round finds every deploy lock free."""
    from django.utils import timezone

    from apps.runs.constants import RunStatus
    from apps.runs.models import Run

    return (
        Run.objects.filter(environment=environment, finished_at__isnull=True)
        .exclude(status__in=[RunStatus.SUCCESSFUL, RunStatus.FAILED, RunStatus.CANCELED])
        .update(status=RunStatus.CANCELED, finished_at=timezone.now())
    )


def tokens(user, count: int) -> list[str]:
    from apps.accounts.services import token_create

    return [
        token_create(user=user, name=f"bench-{uuid.uuid4().hex[:8]}", acting_user=None, via="cli")[
            1
        ]
        for _ in range(count)
    ]


# --- the portal ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def portal_start(port: int, workers: int, threads: int, log_path: Path) -> subprocess.Popen:
    """gunicorn on 127.0.0.1:`port` (threaded workers unless `threads` is 1, as in
    deploy/pushbutton-web.service), once it answers."""
    from django.conf import settings

    log = open(log_path, "w")  # noqa: SIM115 (gunicorn writes it for its whole life)
    proc = subprocess.Popen(
        [str(benchlib.BIN / "gunicorn"), "portal.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", str(workers), "--threads", str(threads), "--backlog", "2048",
         "--chdir", str(benchlib.BASE)],
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


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of process `pid` and its children, alive now."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def postgres_cpu() -> dict[int, float]:
    """CPU seconds of each PostgreSQL server process of the bench database, alive now (with
    DB_CONN_MAX_AGE 0 each request's process ends with it, and its CPU is not seen)."""
    import psutil
    from django.conf import settings

    name = settings.DATABASES["default"]["NAME"]
    found = {}
    for proc in psutil.process_iter(["cmdline", "cpu_times"]):
        line = " ".join(proc.info["cmdline"] or [])
        if line.startswith("postgres:") and f" {name} " in line and proc.info["cpu_times"]:
            found[proc.pid] = proc.info["cpu_times"].user + proc.info["cpu_times"].system
    return found


# --- the load ------------------------------------------------------------------------------
def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def drive(url: str, next_request, keys: list[str], clients: int, pause: float = 0) -> dict:
    """Send what `next_request()` gives ((method, path, body or None), None when done),
    `clients` at once, each client with a token of its own and, with `pause`, sleeping
    that long after each answer (from a random start): latencies, status counts, the runs
    created (id, status), wall time."""
    import httpx

    latencies, statuses, created = [], Counter(), []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(http, key: str) -> None:
        headers = {"Authorization": f"Token {key}"}
        if pause:
            await asyncio.sleep(random.uniform(0, pause))
        while (item := next_request()) is not None:
            method, path, body = item
            extra = {"Idempotency-Key": uuid.uuid4().hex} if method == "POST" else {}
            started = time.perf_counter()
            try:
                response = await http.request(
                    method, path, json=body, headers={**headers, **extra}, timeout=60
                )
                status = response.status_code
            except httpx.HTTPError as exc:
                status, response = type(exc).__name__, None
            latencies.append(time.perf_counter() - started)
            statuses[status] += 1
            if response is not None and method == "POST" and status in (200, 201):
                answer = response.json()
                created.append((answer["id"], answer["status"]))
            if pause:
                await asyncio.sleep(pause)

    async with httpx.AsyncClient(base_url=url, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http, keys[i % len(keys)]) for i in range(clients)))
        wall = time.perf_counter() - started
    return {"latencies": latencies, "statuses": statuses, "created": created, "wall": wall}


def launch_body(slug: str, queue: bool) -> dict:
    body = {
        "service": slug,
        "action": "deploy",
        "environment": ENVIRONMENT,
        "parameters": {"version": f"1.{random.randrange(1000)}.{random.randrange(1000)}"},
        "source": {"commit": uuid.uuid4().hex[:12], "ref": "main"},
    }
    if queue:
        body["when_locked"] = "queue"
    return body


def worker_stand_in() -> None:
    """No worker takes the runs, but a launch to a queue no live worker consumes is
    refused (503): a heartbeat row, as a worker writes it, stands for one (written again
    while the launches run: worker_beating)."""
    from django.conf import settings
    from django.utils import timezone

    from apps.workers.services import WorkerFacts, worker_heartbeat

    worker_heartbeat(
        facts=WorkerFacts(
            hostname="bench-launch@nowhere",
            queues=[settings.CELERY_TASK_DEFAULT_QUEUE],
            concurrency=0,
            pid=os.getpid(),
            pushbutton_version="",
            ansible_core_version="",
            started_at=timezone.now(),
        )
    )


@contextlib.contextmanager
def worker_beating():
    """The stand-in's heartbeat written again every WORKER_HEARTBEAT_SECONDS while the
    block runs, as a live worker does: a round slower than the silence allowed (a loaded
    machine) is not refused for want of a worker."""
    from django.conf import settings
    from django.db import connection

    stop = threading.Event()

    def beat():
        while not stop.wait(settings.WORKER_HEARTBEAT_SECONDS):
            worker_stand_in()
        connection.close()  # this thread's own

    worker_stand_in()
    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def launch_phase(url, keys, slugs, args, environment) -> dict:
    """`args.rounds` rounds of one launch per service (the runs ended between rounds), or
    with `--mode queue` as many launches in one go, every service `args.rounds` times."""
    queue = args.mode == "queue"
    rounds, per_round = (1, args.rounds) if queue else (args.rounds, 1)
    total = {"latencies": [], "statuses": Counter(), "created": [], "wall": 0.0}
    for _ in range(rounds):
        order = [slug for _ in range(per_round) for slug in random.sample(slugs, len(slugs))]
        pending = iter([("POST", "/api/v1/runs/", launch_body(slug, queue)) for slug in order])
        with worker_beating():
            done = asyncio.run(drive(url, lambda p=pending: next(p, None), keys, args.clients))
        for name in ("latencies", "created"):
            total[name] += done[name]
        total["statuses"] += done["statuses"]
        total["wall"] += done["wall"]
        if not queue:
            runs_end(environment)
    return total


def read_phase(url, keys, run_ids, args, pause: float = 0) -> dict:
    """GETs of the runs created, `args.readers` at once, for `args.read_seconds`: back to
    back, or each reader pausing `pause` s after each answer."""
    deadline = time.perf_counter() + args.read_seconds

    def next_request():
        if time.perf_counter() > deadline:
            return None
        return ("GET", f"/api/v1/runs/{random.choice(run_ids)}/", None)

    return asyncio.run(drive(url, next_request, keys, args.readers, pause))


# --- in-process: queries per request, the broker check, a profile --------------------------
def in_process(key: str, slugs: list[str], args, environment) -> dict:
    """Queries the portal runs for one launch and one read (Django's test client, in this
    process, the same database and broker), and the broker check's own time."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from apps.runs.queue import queue_unreachable_reason

    client = Client(HTTP_HOST="localhost", HTTP_AUTHORIZATION=f"Token {key}")

    def launch(slug: str):
        return client.post(
            "/api/v1/runs/",
            launch_body(slug, args.mode == "queue"),
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex,
        )

    launch(slugs[0])  # warm: imports, caches
    # Read at once: each request empties the connection's query log.
    with CaptureQueriesContext(connection) as captured:
        answer = launch(slugs[1])
    launch_sql = [q["sql"] for q in captured.captured_queries]
    with CaptureQueriesContext(connection) as captured:
        client.get(f"/api/v1/runs/{answer.json().get('id')}/")
    read_sql = [q["sql"] for q in captured.captured_queries]
    # One at a time, in this process: the portal's own time and CPU per launch.
    sample = slugs[2 : 2 + args.sequential]
    wall, cpu = time.perf_counter(), time.process_time()
    for slug in sample:
        launch(slug)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    checks = []
    for _ in range(20):
        started = time.perf_counter()
        queue_unreachable_reason()
        checks.append(time.perf_counter() - started)
    if args.profile:
        runs_end(environment)
        profile(launch, slugs[2 : 2 + args.profile_launches])
    return {
        "launch_status": answer.status_code,
        "launch_queries": len(launch_sql),
        "launch_sql": [sql[:140] for sql in launch_sql],
        "read_queries": len(read_sql),
        "broker_check_ms": benchlib.median(checks) * 1000,
        "sequential": len(sample),
        "sequential_ms": wall / len(sample) * 1000,
        "sequential_cpu_ms": cpu / len(sample) * 1000,
    }


def profile(launch, slugs: list[str]) -> None:
    """A profile of in-process launches: pyinstrument when installed, else cProfile."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        Profiler = None
    if Profiler is not None:
        profiler = Profiler(interval=0.0005)
        profiler.start()
        for slug in slugs:
            launch(slug)
        profiler.stop()
        say(profiler.output_text(unicode=True, color=False, show_all=False))
        return
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    for slug in slugs:
        launch(slug)
    prof.disable()
    say(f"cProfile of {len(slugs)} in-process launches (cumulative, top 40):")
    pstats.Stats(prof, stream=sys.stdout).sort_stats("cumulative").print_stats(40)


# --- one backend process -------------------------------------------------------------------
def summary(done: dict) -> dict:
    lat = done["latencies"]
    ok = sum(n for s, n in done["statuses"].items() if s in (200, 201))
    return {
        "requests": len(lat),
        "ok": ok,
        "per_s": ok / done["wall"] if done["wall"] else 0.0,
        "p50_ms": percentile(lat, 0.50) * 1000,
        "p99_ms": percentile(lat, 0.99) * 1000,
        "statuses": {str(k): v for k, v in sorted(done["statuses"].items(), key=str)},
    }


def machine_speed(count: int = 2_000_000) -> tuple[float, float]:
    """CPU and wall seconds of a fixed pure-Python loop: how fast a CPU second is on this
    machine now, and what share of a core a process gets (CPU / wall)."""
    cpu, wall, total = time.process_time(), time.perf_counter(), 0
    for i in range(count):
        total += i
    return time.process_time() - cpu, time.perf_counter() - wall


def measured(web, phase) -> dict:
    """`phase()` (a `drive` result) summed up, with the load average before it and the CPU
    this process (the load generator) and the gunicorn workers took."""
    load = os.getloadavg()
    cpu_client, cpu_web, cpu_db = time.process_time(), tree_cpu(web.pid), postgres_cpu()
    done = phase()
    cpu_client, cpu_web = time.process_time() - cpu_client, tree_cpu(web.pid) - cpu_web
    cpu_db = sum(cpu - cpu_db.get(pid, 0.0) for pid, cpu in postgres_cpu().items())
    return {
        "db_cpu": cpu_db,
        **summary(done),
        "load": load,
        "client_cpu": cpu_client,
        "web_cpu": cpu_web,
        "wall": done["wall"],
        "created": done["created"],
    }


def repeat_once(url, keys, slugs, args, environment, web) -> dict:
    """The launches, then reads of their runs back to back, then reads as `pushbutton
    wait` asks (a GET per reader every `--read-pause` s)."""
    speed = machine_speed()
    launch = measured(web, lambda: launch_phase(url, keys, slugs, args, environment))
    created = launch.pop("created")
    launch["run_statuses"] = dict(Counter(status for _, status in created))
    run_ids = [run_id for run_id, _ in created] or [1]
    read = measured(web, lambda: read_phase(url, keys, run_ids, args))
    paced = measured(web, lambda: read_phase(url, keys, run_ids, args, args.read_pause))
    del read["created"], paced["created"]
    runs_end(environment)
    return {"launch": launch, "read": read, "paced": paced, "speed": speed}


def backend_main(args) -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    benchlib.django_setup()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    from django.conf import settings

    environment, user, slugs = fixtures(args.services)
    runs_end(environment)
    keys = tokens(user, max(args.clients, args.readers))
    port = free_port()
    log = settings.VAR_DIR / "bench-launch-gunicorn.log"
    web = portal_start(port, args.workers, args.threads, log)
    url = f"http://127.0.0.1:{port}"
    reps = []
    try:
        # Warm every worker (imports, first connections) before anything is timed: every
        # thread of each, as a worker starts its threads (and each its own database
        # connection) only when the ones it has are busy.
        threads = args.workers * args.threads
        warm = iter([("GET", "/api/v1/runs/?limit=1", None)] * threads * 10)
        asyncio.run(drive(url, lambda: next(warm, None), keys, threads * 2))
        for rep in range(1, args.repeat + 1):
            result = repeat_once(url, keys, slugs, args, environment, web)
            reps.append(result)
            for phase in ("launch", "read", "paced"):
                r = result[phase]
                say(
                    f"rep {rep} {phase}: {r['ok']}/{r['requests']} ok, {r['per_s']:.0f}/s, "
                    f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, statuses "
                    f"{r['statuses']}; CPU s: client {r['client_cpu']:.1f}, gunicorn "
                    f"{r['web_cpu']:.1f} in {r['wall']:.1f} s; load {r['load'][0]:.1f}"
                    + (f"; runs {r['run_statuses']}" if phase == "launch" else "")
                )
        runs_end(environment)
        with worker_beating():
            queries = in_process(keys[0], slugs, args, environment)
        runs_end(environment)
    finally:
        benchlib.worker_stop(web)
        queue_forget(settings.CELERY_BROKER_URL, settings.CELERY_TASK_DEFAULT_QUEUE)
    Path(args.result).write_text(json.dumps({"reps": reps, "queries": queries}))


def queue_forget(broker: str, queue: str) -> None:
    """Drop this invocation's queue from Redis: no worker will ever take its messages."""
    if not broker.startswith("redis"):
        return
    import redis

    client = redis.Redis.from_url(broker)
    # The queue's list and its bindings (_kombu.binding.<queue>, ...binding_permanent...).
    for name in client.scan_iter(match=f"*{queue}*"):
        client.delete(name)
    client.close()


# --- the figures ---------------------------------------------------------------------------
PHASES = {
    "launch": "launch",
    "read": "read, back to back",
    "paced": "read, as `wait` polls",
}


def report(result: dict, args) -> None:
    reps, queries = result["reps"], result["queries"]
    conn_max_age = args.conn_max_age
    if conn_max_age is None:
        conn_max_age = os.environ.get("DB_CONN_MAX_AGE", "60")
    how = (
        f"each of {args.services} services launched once per round, {args.rounds} rounds "
        "(the runs ended between rounds)"
        if args.mode == "rounds"
        else f'{args.services} services x {args.rounds} launches, "when_locked": "queue"'
    )
    say(
        f"\nPostgreSQL (DB_CONN_MAX_AGE {conn_max_age}), gunicorn {args.workers} workers x "
        f"{args.threads} threads, broker {args.broker}.\nlaunch: {args.clients} clients, {how}.\n"
        f"read: {args.readers} clients for {args.read_seconds:.0f} s, back to back, then "
        f"each pausing {args.read_pause:g} s after each answer (as `pushbutton wait`).\n"
    )
    headers = [
        "rep", "phase", "ok/s", "p50 ms", "p99 ms", "statuses", "client CPU %",
        "gunicorn CPU %", "gunicorn CPU ms/req", "PostgreSQL CPU ms/req", "load",
        "core share",
    ]  # fmt: skip
    rows, persistent = [], str(conn_max_age) != "0"
    for i, rep in enumerate(reps, 1):
        share = rep["speed"][0] / rep["speed"][1]
        for phase, label in PHASES.items():
            r = rep[phase]
            rows.append(
                [
                    i, label, f"{r['per_s']:.0f}", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}",
                    " ".join(f"{k}:{v}" for k, v in r["statuses"].items()),
                    f"{100 * r['client_cpu'] / r['wall']:.0f}",
                    f"{100 * r['web_cpu'] / r['wall']:.0f}",
                    f"{1000 * r['web_cpu'] / max(1, r['requests']):.1f}",
                    f"{1000 * r['db_cpu'] / max(1, r['requests']):.1f}" if persistent else "-",
                    f"{r['load'][0]:.1f}", f"{share:.2f}",
                ]
            )  # fmt: skip
    say(benchlib.table(headers, rows))
    say(
        "(CPU %: of one core over the phase; PostgreSQL CPU: of the server processes of "
        "the bench database, seen only when they outlive a request (DB_CONN_MAX_AGE > 0); "
        "core share: the CPU / wall of a fixed Python loop run just before, under 1 when "
        "the machine has no core free)"
    )
    verdict = {True: "met", False: "MISSED"}
    per_s = benchlib.median([rep["launch"]["per_s"] for rep in reps])
    say(
        f"\nlaunches accepted: target >= {TARGET_LAUNCHES:.0f}/s, measured {per_s:.0f}/s "
        f"(median of {len(reps)}): {verdict[per_s >= TARGET_LAUNCHES]}"
    )
    if args.mode == "queue" and any("409" in rep["launch"]["statuses"] for rep in reps):
        say('409s in queue mode: this portal refused rather than queued ("when_locked").')
    for phase in ("read", "paced"):
        p99 = benchlib.median([rep[phase]["p99_ms"] for rep in reps])
        say(
            f"{PHASES[phase]} p99: target < {TARGET_READ_P99 * 1000:.0f} ms, measured "
            f"{p99:.1f} ms (median of {len(reps)}): {verdict[p99 < TARGET_READ_P99 * 1000]}"
        )
    say(
        f"queries: {queries['launch_queries']} per launch (status {queries['launch_status']}), "
        f"{queries['read_queries']} per read; the broker check (queue_unreachable_reason) "
        f"{queries['broker_check_ms']:.1f} ms; one launch at a time in-process: "
        f"{queries['sequential_ms']:.0f} ms, {queries['sequential_cpu_ms']:.0f} ms CPU "
        f"(mean of {queries['sequential']})"
    )
    if args.queries:
        say("\n".join(queries["launch_sql"]))


def main(args) -> int:
    env = benchlib.backend_env("postgres", name="launch", broker=args.broker)
    env["DATABASE_URL"] = args.database
    if args.conn_max_age is not None:
        env["DB_CONN_MAX_AGE"] = str(args.conn_max_age)
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        options = ["--result", out.name]
        for name in (
            "repeat", "rounds", "services", "clients", "readers", "read_seconds", "read_pause",
            "workers", "threads",
            "mode", "profile_launches", "sequential",
        ):  # fmt: skip
            options += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
        if args.profile:
            options.append("--profile")
        done = benchlib.backend_run(str(Path(__file__).resolve()), "postgres", env, options)
        if done.returncode != 0:
            print(f"The bench process failed ({done.returncode}).", file=sys.stderr)
            return done.returncode
        report(json.loads(Path(out.name).read_text()), args)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="launches per service")
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--clients", type=int, default=50, help="concurrent launches")
    parser.add_argument("--readers", type=int, default=50, help="concurrent reads")
    parser.add_argument("--read-seconds", type=float, default=10)
    parser.add_argument(
        "--read-pause", type=float, default=1.0, help="s, as `pushbutton wait` (POLL_WAIT)"
    )
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument(
        "--threads", type=int, default=4, help="threads per gunicorn worker (1: sync workers)"
    )
    parser.add_argument(
        "--conn-max-age",
        type=int,
        default=None,
        help="the portal's DB_CONN_MAX_AGE (default: the environment's, else the portal's 60; "
        "0: a new database connection per request)",
    )
    parser.add_argument("--mode", choices=["rounds", "queue"], default="rounds")
    parser.add_argument("--broker", default=benchlib.REDIS_URL)
    parser.add_argument("--database", default=os.environ.get("BENCH_POSTGRES_URL", POSTGRES_URL))
    parser.add_argument("--profile", action="store_true", help="profile in-process launches")
    parser.add_argument("--profile-launches", type=int, default=20)
    parser.add_argument("--sequential", type=int, default=30, help="in-process launches")
    parser.add_argument("--queries", action="store_true", help="print a launch's SQL")
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.backend:
        backend_main(args)
    else:
        sys.exit(main(args))
