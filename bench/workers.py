"""Queued to running with 1, 2 and 4 worker processes, and a killed worker's run lost.

On PostgreSQL, once per broker (Redis, RabbitMQ: `--brokers`), each in a process of its
own (Django reads the broker from its settings once per process):

- **latency**: `--sizes` (default 1, 2, 4) `celery worker` processes, each with one pool
  process (`--concurrency 1`, as the README starts them), each consuming both queues of
  two environments. `--runs` (default 200) runs of a short playbook (one `debug` task on
  localhost), launched through `run_launch` alternately on the two environments, one
  run per worker in flight: a run is launched when one ends (a closed loop), so a run
  never waits for a busy worker, only for the broker and a worker to take it. Prints
  **queued to running** (`started_at - queued_at`: from the message sent to the run
  marked running by the worker), median and p99, and the **runs per minute** sustained
  (runs / the time from the first launch to the last end). Warm-up runs (the git
  mirror, each worker's first connections) come first and are not counted.
  Target: **median < 0.5 s** at every size.
- **kill**: a worker running a run that sleeps is killed with SIGKILL (its process
  group, as `kill -9` or the OOM killer), while another worker runs beat (the reaper),
  both with the default RUN_HEARTBEAT_SECONDS, RUN_LOST_AFTER_SECONDS and
  RUN_REAP_SECONDS (10, 30, 15). Prints the seconds from the kill to the run shown
  *lost* and to its deploy lock free (`--kills` times). Promise: **< 45 s**.

    .venv/bin/python bench/workers.py [--brokers redis,rabbitmq] [--runs 200]
        [--sizes 1,2,4] [--kills 2] [--redis redis://127.0.0.1:6379/0]
        [--rabbitmq amqp://guest:guest@127.0.0.1:5672//]
        [--database postgres://postgres@127.0.0.1:5432/pushbutton_bench_workers]
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import benchlib

TARGET_MEDIAN = 0.5  # s, queued to running
TARGET_LOST = 45.0  # s, SIGKILL to lost
POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/pushbutton_bench_workers"
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"
SERVICES = 16  # services per environment: the runs in flight never meet a deploy lock
SHORT = """---
- name: Short
  hosts: all
  gather_facts: false
  tasks:
    - name: Say
      ansible.builtin.debug:
        msg: short
"""
SLEEP = """---
- name: Sleep
  hosts: all
  gather_facts: false
  tasks:
    - name: Sleep in a shell
      ansible.builtin.shell: "sleep {{ seconds }}; echo woke"
"""
# Settings the kill measure must not inherit from the shell: it measures the defaults.
BEATS = ("RUN_HEARTBEAT_SECONDS", "RUN_LOST_AFTER_SECONDS", "RUN_REAP_SECONDS")


def say(text: str) -> None:
    print(text, flush=True)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


# --- fixtures, in the backend's own process ---------------------------------------------
def fixtures(queues: list[str]):
    """Two environments on `queues`, SERVICES services with a `short` and a `sleep`
    action on both, approved playbooks from a git repository under VAR_DIR, and a user
    whose team may run them there."""
    from django.conf import settings

    from apps.accounts.models import Grant, Right, Role, Team, User
    from apps.audit.constants import Via
    from apps.catalog.constants import ActionKind
    from apps.catalog.models import Action, PlaybookSource, Service
    from apps.catalog.services import playbook_version_approve, source_sync
    from apps.environments.models import Environment

    repo = settings.VAR_DIR / "bench-workers-playbooks"
    repo.mkdir(parents=True, exist_ok=True)
    if not (repo / ".git").exists():
        subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "short.yml").write_text(SHORT)
    (repo / "sleep.yml").write_text(SLEEP)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=b", "-c", "user.email=b@example.com",
         "commit", "-q", "--allow-empty", "-m", "bench playbooks"],
        check=True,
    )  # fmt: skip
    ops, _ = User.objects.get_or_create(
        username="bench-workers-ops", defaults={"role": Role.OPS, "is_staff": True}
    )
    source, _ = PlaybookSource.objects.get_or_create(
        name="bench-workers", defaults={"url": str(repo)}
    )
    source_sync(source=source, acting_user=ops, via=Via.CLI)
    versions = {}
    for version in source.versions.filter(approved_at__isnull=True):
        playbook_version_approve(version=version, acting_user=ops, via=Via.CLI)
    for version in source.versions.order_by("-pk"):
        versions.setdefault(version.path.removesuffix(".yml"), version)
    envs = []
    for index, queue in enumerate(queues):
        env, _ = Environment.objects.update_or_create(
            slug=f"bench-workers-{index}",
            defaults={
                "name": f"Bench workers {index}",
                "order": 1100 + index,
                "queue": queue,
                "inventory": {"all": {"hosts": {"localhost": {"ansible_connection": "local"}}}},
            },
        )
        envs.append(env)
    team, _ = Team.objects.get_or_create(slug="bench-workers", defaults={"name": "Bench workers"})
    team.memberships.get_or_create(user=ops)
    for env in envs:
        Grant.objects.get_or_create(team=team, service=None, environment=env, right=Right.RUN)
    actions = []
    for index in range(SERVICES):
        slug = f"bench-workers-{index:02d}"
        service, _ = Service.objects.get_or_create(slug=slug, defaults={"name": slug})
        pair = {}
        for name in ("short", "sleep"):
            action, _ = Action.objects.update_or_create(
                service=service,
                slug=name,
                defaults={
                    "label": name.capitalize(),
                    "kind": ActionKind.DEPLOY,
                    "playbook_version": versions[name],
                    "timeout": 600,
                    "form": [{"name": "seconds", "type": "integer"}] if name == "sleep" else [],
                },
            )
            action.environments.set(envs)
            pair[name] = action
        actions.append(pair)
    return ops, envs, actions


def launch(ops, action, env, **parameters):
    from apps.runs import services

    return services.run_launch(
        services.LaunchRequest(
            user=ops, service=action.service, action=action, environment=env,
            parameters=parameters, via="cli",
        )
    )  # fmt: skip


def runs_end_all(envs) -> None:
    """End what an earlier, interrupted invocation left going on the bench environments."""
    from django.utils import timezone

    from apps.runs.constants import ACTIVE_STATUSES, RunStatus
    from apps.runs.models import Run

    Run.objects.filter(environment__in=envs, status__in=ACTIVE_STATUSES).update(
        status=RunStatus.CANCELED, finished_at=timezone.now()
    )


def workers_start(count: int, queues: list[str], tag: str, **env) -> list[subprocess.Popen]:
    """`count` worker processes on `queues`, started together, once all are ready."""
    from django.conf import settings

    procs, logs = [], []
    for index in range(count):
        log_path = settings.VAR_DIR / f"bench-workers-{tag}-{index}.log"
        log = open(log_path, "w")  # noqa: SIM115 (the worker writes it for its whole life)
        command = [
            str(benchlib.BIN / "celery"), "-A", "portal", "worker", "-Q", ",".join(queues),
            "--concurrency", "1", "-n", f"bench-{tag}-{index}-{uuid.uuid4().hex[:6]}@%h",
            "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        if env.pop("beat", False):  # and the housekeeping beat sends (the reaper)
            command[command.index("-Q") + 1] += f",{settings.CELERY_HOUSEKEEPING_QUEUE}"
            command += ["--beat", "--schedule", str(log_path.with_suffix(".schedule"))]
        procs.append(
            subprocess.Popen(
                command, cwd=settings.VAR_DIR, stdout=log, stderr=subprocess.STDOUT,
                env={**benchlib.python_path_env(), **env}, start_new_session=True,
            )
        )  # fmt: skip
        logs.append(log_path)
    deadline = time.monotonic() + 120
    while not all("ready." in path.read_text() for path in logs):
        if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
            workers_kill(procs)
            raise RuntimeError("A worker did not start: see " + ", ".join(map(str, logs)))
        time.sleep(0.1)
    return procs


def workers_kill(procs) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def closed_loop(ops, envs, actions, *, runs: int, in_flight: int) -> list:
    """`runs` short runs, `in_flight` at a time, alternately on the environments; the
    final runs, in launch order."""
    from apps.runs.models import Run

    going, done, launched = [], [], 0
    slot = 0
    while len(done) < runs:
        while len(going) < in_flight and launched < runs:
            env = envs[launched % len(envs)]
            # A service whose deploy lock on env is free: the oldest slot in rotation.
            action = actions[(slot // len(envs)) % len(actions)]["short"]
            slot += 1
            going.append(launch(ops, action, env).pk)
            launched += 1
        ended = list(
            Run.objects.filter(pk__in=going, finished_at__isnull=False).values_list("pk", flat=True)
        )
        for pk in ended:
            going.remove(pk)
            done.append(pk)
        if not ended:
            time.sleep(0.02)
    return list(Run.objects.filter(pk__in=done).order_by("pk"))


def latency_phase(ops, envs, actions, queues, size: int, runs: int) -> dict:
    procs = workers_start(size, queues, f"w{size}")
    try:
        closed_loop(ops, envs, actions, runs=2 * size, in_flight=size)  # warm-up
        load = os.getloadavg()
        done = closed_loop(ops, envs, actions, runs=runs, in_flight=size)
    finally:
        workers_kill(procs)
    waits = [(r.started_at - r.queued_at).total_seconds() for r in done if r.started_at]
    span = (max(r.finished_at for r in done) - min(r.queued_at for r in done)).total_seconds()
    statuses: dict[str, int] = {}
    for run in done:
        statuses[run.status] = statuses.get(run.status, 0) + 1
    return {
        "size": size,
        "runs": len(done),
        "statuses": statuses,
        "median": benchlib.median(waits),
        "p99": percentile(waits, 0.99),
        "max": max(waits),
        "per_minute": 60 * len(done) / span,
        "run_seconds": benchlib.median(
            [(r.finished_at - r.started_at).total_seconds() for r in done if r.started_at]
        ),
        "load": load[0],
    }


def kill_phase(ops, envs, actions, queues, index: int) -> dict:
    """A worker on queues[0] killed mid-run; the reaper on another worker's beat."""
    from django.conf import settings

    from apps.runs import runner
    from apps.runs.constants import ACTIVE_STATUSES, RunStatus
    from apps.runs.models import Run

    defaults = {name: "" for name in BEATS}  # unset below: the portal's defaults
    env = {k: v for k, v in benchlib.python_path_env().items() if k not in defaults}
    own = settings.CELERY_TASK_DEFAULT_QUEUE
    reaper = workers_start(1, [own], f"reaper{index}", beat=True, **env)
    victim = workers_start(1, [queues[0]], f"victim{index}", **env)
    action = actions[index % len(actions)]["sleep"]
    try:
        seconds = 900 + index
        run = launch(ops, action, envs[0], seconds=seconds)
        while not Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING).exists():
            time.sleep(0.05)
        # Killed at a random point of the heartbeat's period, as a real kill comes.
        time.sleep(3 + (index * 3.7) % 10)
        os.killpg(victim[0].pid, signal.SIGKILL)
        victim[0].wait()
        killed = time.monotonic()
        lost = freed = None
        while lost is None or freed is None:
            now = time.monotonic()
            if lost is None and Run.objects.filter(pk=run.pk, status=RunStatus.LOST).exists():
                lost = now - killed
            if freed is None and not Run.objects.filter(
                service=action.service, environment=envs[0], status__in=ACTIVE_STATUSES,
                check_mode=False,
            ).exists():  # fmt: skip
                freed = now - killed
            if now - killed > 300:
                raise RuntimeError(f"Run {run.pk} was not lost within 300 s")
            time.sleep(0.1)
        run.refresh_from_db()
        runner.run_processes_kill(run.marker)  # what the dead worker's restart would do
    finally:
        workers_kill(reaper + victim)
    return {"lost": lost, "freed": freed, "error": run.error}


def backend_main(args) -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    benchlib.django_setup()
    from django.conf import settings

    base = settings.CELERY_TASK_DEFAULT_QUEUE
    queues = [f"{base}-a", f"{base}-b"]
    ops, envs, actions = fixtures(queues)
    runs_end_all(envs)
    result = {"latency": [], "kills": []}
    try:
        for size in args.sizes:
            r = latency_phase(ops, envs, actions, queues, size, args.runs)
            say(
                f"  {size} worker(s): {r['runs']} runs {r['statuses']}, queued->running median "
                f"{r['median']:.3f} s, p99 {r['p99']:.3f} s, max {r['max']:.3f} s; "
                f"{r['per_minute']:.0f} runs/min; run {r['run_seconds']:.2f} s; "
                f"load {r['load']:.1f}"
            )
            result["latency"].append(r)
        for index in range(args.kills):
            r = kill_phase(ops, envs, actions, queues, index)
            say(f"  kill {index + 1}: lost after {r['lost']:.1f} s, lock free {r['freed']:.1f} s")
            result["kills"].append(r)
    finally:
        runs_end_all(envs)
        queues_forget(settings.CELERY_BROKER_URL, [*queues, base])
    Path(args.result).write_text(json.dumps(result))


def queues_forget(broker: str, queues: list[str]) -> None:
    """Drop this invocation's queues from the broker: no worker will take them again."""
    from portal.celery import app

    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in queues:
            try:
                channel.queue_delete(queue)
            except Exception as exc:  # a queue never declared
                say(f"  (queue {queue} not deleted: {exc})")
                channel = connection.channel()


# --- the figures ---------------------------------------------------------------------------
def report(results: dict, args) -> None:
    verdict = {True: "met", False: "MISSED"}
    say(
        f"\nPostgreSQL; {args.runs} runs of a one-task playbook per size, one run in flight "
        "per worker process (each --concurrency 1, on both queues).\n"
    )
    rows = []
    for broker, result in results.items():
        for r in result["latency"]:
            rows.append(
                [
                    broker, r["size"], r["runs"], f"{r['median']:.3f}", f"{r['p99']:.3f}",
                    f"{r['max']:.3f}", f"{r['per_minute']:.0f}", f"{r['run_seconds']:.2f}",
                    f"{r['load']:.1f}", verdict[r["median"] < TARGET_MEDIAN],
                ]
            )  # fmt: skip
    say(
        benchlib.table(
            [
                "broker", "workers", "runs", "queued->running median s", "p99 s", "max s",
                "runs/min", "run s (median)", "load", f"median < {TARGET_MEDIAN} s",
            ],
            rows,
        )
    )  # fmt: skip
    rows = []
    for broker, result in results.items():
        for i, r in enumerate(result["kills"], 1):
            rows.append(
                [broker, i, f"{r['lost']:.1f}", f"{r['freed']:.1f}", verdict[r["lost"] < 45]]
            )
    if rows:
        say("\nSIGKILL of a worker mid-run, default settings (heartbeat 10 s, lost after 30 s,")
        say("reaper every 15 s):\n")
        headers = ["broker", "kill", "to lost s", "to lock free s", f"< {TARGET_LOST:.0f} s"]
        say(benchlib.table(headers, rows))
        say(f"\nthe run's message: {results[next(iter(results))]['kills'][0]['error']}")


def main(args) -> int:
    urls = {"redis": args.redis, "rabbitmq": args.rabbitmq}
    results = {}
    for broker in args.brokers:
        say(f"--- {broker} ({urls[broker]})")
        env = benchlib.backend_env("postgres", name="workers", broker=urls[broker])
        env["DATABASE_URL"] = args.database
        for name in BEATS:
            env.pop(name, None)
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            options = [
                "--result", out.name, "--runs", str(args.runs), "--kills", str(args.kills),
                "--sizes", ",".join(map(str, args.sizes)),
            ]  # fmt: skip
            done = benchlib.backend_run(str(Path(__file__).resolve()), "postgres", env, options)
            if done.returncode != 0:
                print(f"The bench process failed ({done.returncode}).", file=sys.stderr)
                return done.returncode
            results[broker] = json.loads(Path(out.name).read_text())
    report(results, args)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--brokers", type=lambda s: s.split(","), default=["redis", "rabbitmq"])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4])
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--redis", default=benchlib.REDIS_URL)
    parser.add_argument("--rabbitmq", default=RABBITMQ_URL)
    parser.add_argument("--database", default=os.environ.get("BENCH_POSTGRES_URL", POSTGRES_URL))
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.backend:
        backend_main(args)
    else:
        sys.exit(main(args))
