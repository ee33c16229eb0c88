"""What the bench scripts share: a backend's environment, its database, Django, a worker.

Each backend runs in a process of its own, because Django reads its settings
(VAR_DIR, DATABASE_URL, the broker) once per process.
"""

import os
import random
import resource
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BACKENDS = ("sqlite", "postgres")
POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/pushbutton_bench"
REDIS_URL = "redis://127.0.0.1:6379/0"


def backend_env(backend: str, *, name: str, broker: str = "") -> dict[str, str]:
    """The environment of a bench process for `backend`: its own var/ folder, database
    and queues (the runs', the housekeeping's). SQLite uses the embedded default broker
    (filesystem); PostgreSQL the production shape (Redis) unless `broker` says otherwise."""
    queue = f"bench-{name}-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "VAR_DIR": str(BASE / "var" / f"bench-{backend}"),
        "CELERY_DEFAULT_QUEUE": queue,
        "CELERY_HOUSEKEEPING_QUEUE": f"{queue}-housekeeping",
        "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-secret-key-not-for-production"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DATABASE_URL", None)
    env.pop("CELERY_BROKER_URL", None)
    if backend == "postgres":
        env["DATABASE_URL"] = os.environ.get("BENCH_POSTGRES_URL", POSTGRES_URL)
        broker = broker or REDIS_URL
    if broker and broker != "filesystem":
        env["CELERY_BROKER_URL"] = broker
    return env


def python_path_env(env: dict | None = None) -> dict[str, str]:
    """`env` (default: this process's) with the project importable from any directory."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BASE), env.get("PYTHONPATH")]))
    return env


def backend_run(
    script: str, backend: str, env: dict, args: list[str]
) -> subprocess.CompletedProcess:
    """Run `script` for one backend in a process of its own, in its VAR_DIR."""
    Path(env["VAR_DIR"]).mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, script, "--backend", backend, *args],
        env=python_path_env(env),
        cwd=env["VAR_DIR"],
    )


def postgres_database_ensure(url: str) -> None:
    """Create the database of `url` when it does not exist yet."""
    import dj_database_url
    import psycopg
    from psycopg import sql

    db = dj_database_url.parse(url)
    params = {
        "host": db["HOST"] or "127.0.0.1",
        "port": db["PORT"] or 5432,
        "user": db["USER"] or "postgres",
        "password": db["PASSWORD"] or None,
    }
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]])
        if not found.fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db["NAME"])))


def django_setup(*, migrate: bool = True) -> None:
    """Set Django up in this process for the backend its environment names."""
    if (url := os.environ.get("DATABASE_URL", "")).startswith("postgres"):
        postgres_database_ensure(url)
    sys.path.insert(0, str(BASE))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)


def backend_label() -> str:
    from django.db import connection

    return "postgres" if connection.vendor == "postgresql" else connection.vendor


def worker_start(log_path: Path, *, timeout: float = 90) -> subprocess.Popen:
    """A real Celery worker on this process's queue and database, once it is ready.

    It runs in VAR_DIR: the filesystem broker keeps its exchange files in
    `control/` under the current directory, which must not be the source tree.
    """
    from django.conf import settings

    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "w")  # noqa: SIM115 (the worker writes it for its whole life)
    proc = subprocess.Popen(
        [
            str(BIN / "celery"), "-A", "portal", "worker",
            "-Q", f"{settings.CELERY_TASK_DEFAULT_QUEUE},{settings.CELERY_HOUSEKEEPING_QUEUE}",
            "--concurrency", "1",
            "-n", f"bench-{uuid.uuid4().hex[:8]}@%h", "--loglevel", "INFO",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ],
        cwd=settings.VAR_DIR, env=python_path_env(), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    while "ready." not in log_path.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"The Celery worker did not start:\n{log_path.read_text()}")
        time.sleep(0.1)
    return proc


def worker_stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def children_cpu() -> float:
    """CPU seconds of this process's children it waited for (user and system)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tree_cpu(proc) -> float:
    """CPU seconds of a worker (a psutil.Process) and its pool processes, with the
    children they reaped (ansible-playbook and its forks)."""
    total = 0.0
    for p in [proc, *proc.children()]:
        times = p.cpu_times()
        total += times.user + times.system + times.children_user + times.children_system
    return total


def median(values):
    return statistics.median(values) if values else float("nan")


def table(headers: list[str], rows: list[list]) -> str:
    """A plain text table, numbers right-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [
        all(_is_number(row[i]) for row in cells[1:]) if rows else False for i in range(len(headers))
    ]

    def line(row):
        return "  ".join(
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(row, widths, numeric, strict=True)
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *[line(row) for row in cells[1:]]])


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", "").rstrip("x"))
    except ValueError:
        return text in ("-", "n/a")
    return True


# --- a long run history, and timing pages over it (catalog, insights, metrics) ---------
def bench_version():
    """The approved playbook version every bench action points at (never run)."""
    from django.utils import timezone

    from apps.catalog.models import PlaybookSource, PlaybookVersion

    source, _ = PlaybookSource.objects.get_or_create(name="bench", defaults={"url": "/dev/null"})
    return PlaybookVersion.objects.get_or_create(
        source=source, commit="0" * 40, path="deploy.yml",
        defaults={"content_hash": "0" * 64, "approved_at": timezone.now()},
    )[0]  # fmt: skip


def runs_bulk_load(total: int, pairs: list, make_run, *, seed: int = 7, batch: int = 20_000):
    """Bulk-insert `total` runs, each of an (action, environment) of `pairs` picked at
    random, with the fields `make_run(rng, now)` returns; then fresh statistics."""
    from django.utils import timezone

    from apps.runs.models import Run
    from apps.runs.services import run_snapshot

    snapshots = [run_snapshot(action=action, environment=env) for action, env in pairs]
    rng = random.Random(seed)
    now = timezone.now()
    made = 0
    while made < total:
        rows = [
            Run(**snapshots[rng.randrange(len(snapshots))], **make_run(rng, now))
            for _ in range(min(batch, total - made))
        ]
        Run.objects.bulk_create(rows, batch_size=2000)
        made += len(rows)
        print(f"  {made:,} runs", end="\r", flush=True)
    print()
    analyze()


def analyze() -> None:
    """Fresh statistics, as a production database keeps them (autovacuum): the planner
    of a table loaded a moment ago knows nothing of its million rows."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def page_time(client, url: str, repeat: int) -> dict:
    """`repeat` GETs of `url` after a warm one: median, p95 and slowest wall time, the
    median CPU time of this process (the server's Python, and SQLite's), the SQL
    statements of one request and the answer's size."""
    from django.db import connection

    response = client.get(url)  # warm
    assert response.status_code == 200, (url, response.status_code, response.content[:300])
    queries = []

    def counted(execute, sql, params, many, context):
        queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(counted):
        client.get(url)
    times, cpu = [], []
    for _ in range(repeat):
        started, cpu_started = time.perf_counter(), time.process_time()
        response = client.get(url)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        assert response.status_code == 200, (url, response.status_code)
    times.sort()
    return {
        "url": url,
        "median": statistics.median(times),
        "p95": times[min(len(times) - 1, round(0.95 * (len(times) - 1)))],
        "max": times[-1],
        "cpu": statistics.median(cpu),
        "queries": len(queries),
        "kb": len(response.content) / 1024,
    }
