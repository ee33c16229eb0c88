"""/metrics over a long run history: how long a scrape takes.

Creates (or reuses) the history of bench/insights.py (`--runs`, default 100,000 runs
across 200 services and five environments), with the event-ingest figures a worker
writes on each run, a few hundred runs queued or waiting, some live workers and a
couple of thousand refused launches in the audit log; then times GET /metrics through
Django's test Client with the token (in-process, so the time is the server's): the
first scrape of the process (which adds up the settled runs once), then the median and
the slowest of `--repeat` more, the CPU time the web process spent on one (the
database's aside), and the collector's own figure (pushbutton_metrics_scrape_seconds,
which includes formatting the families it yields).

Target: **< 250 ms** per scrape on PostgreSQL with 100,000 runs; SQLite reported too.

    .venv/bin/python bench/metrics.py [--runs 100000] [--only sqlite|postgres] [--repeat 10]
"""

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import benchlib
from insights import _history

TARGET_SECONDS = 0.25
TOKEN = "bench-metrics-token"
REFUSALS = 2000
PENDING = 300


def _extras() -> None:
    """What a scrape reads beside the runs, unless it is there already."""
    from django.db.models import F
    from django.utils import timezone

    from apps.audit.constants import Outcome, Via
    from apps.audit.models import AuditEvent
    from apps.audit.services import audit_record
    from apps.environments.models import Environment
    from apps.runs.constants import RefusalKind, RunStatus
    from apps.runs.models import Run
    from apps.workers.models import Worker

    if AuditEvent.objects.filter(verb="run.refused").count() >= REFUSALS:
        return
    rng = random.Random(11)
    # A worker's figures: a batch per ~40 events, each in a few milliseconds.
    Run.objects.update(
        event_count=60, ingest_batches=F("id") % 5 + 1, ingest_seconds=(F("id") % 7) * 0.004
    )
    now = timezone.now()
    ids = list(Run.objects.order_by("-id").values_list("id", flat=True)[: PENDING * 3])
    waiting = ids[:PENDING]
    Run.objects.filter(id__in=waiting).update(
        status=RunStatus.WAITING, started_at=None, finished_at=None, created_at=now
    )
    # Queued: one per service and environment at most (the deploy lock).
    seen, queued = set(), []
    candidates = Run.objects.filter(id__in=ids[PENDING:])
    for run in candidates.values("id", "service_id", "environment_id"):
        if (run["service_id"], run["environment_id"]) not in seen:
            seen.add((run["service_id"], run["environment_id"]))
            queued.append(run["id"])
    Run.objects.filter(id__in=queued).update(
        status=RunStatus.QUEUED, started_at=None, finished_at=None, queued_at=now
    )
    for queue in Environment.objects.values_list("queue", flat=True).distinct():
        Worker.objects.update_or_create(
            hostname=f"bench@{queue}",
            defaults={
                "queues": [queue],
                "started_at": now,
                "last_seen_at": now + timedelta(days=1),
            },
        )
    kinds = [str(kind) for kind in RefusalKind]
    for n in range(REFUSALS):
        audit_record(
            actor=None,
            via=Via.API,
            verb="run.refused",
            object_type="catalog.action",
            details={"reason": f"bench refusal {n}", "kind": rng.choice(kinds)},
            outcome=Outcome.REFUSED,
        )
    benchlib.analyze()


def backend_main(args) -> None:
    os.environ["METRICS_TOKEN"] = TOKEN
    benchlib.django_setup()
    from django.test import Client
    from prometheus_client.parser import text_string_to_metric_families

    from apps.runs.models import Run

    started = time.perf_counter()
    _history(args.runs)
    _extras()
    built = time.perf_counter() - started
    client = Client(SERVER_NAME="localhost", headers={"Authorization": f"Bearer {TOKEN}"})
    # The first scrape of a process adds up the settled runs (a pass over the table);
    # the next ones read only what settled since and the runs still going.
    began = time.perf_counter()
    assert client.get("/metrics").status_code == 200
    first = time.perf_counter() - began
    times, cpu, collector, samples = [], [], [], 0
    for _ in range(args.repeat):
        began, began_cpu = time.perf_counter(), time.process_time()
        response = client.get("/metrics")
        times.append(time.perf_counter() - began)
        cpu.append(time.process_time() - began_cpu)
        assert response.status_code == 200, response.content[:300]
        text = response.content.decode()
        families = list(text_string_to_metric_families(text))
        samples = sum(len(family.samples) for family in families)
        collector += [
            sample.value
            for family in families
            for sample in family.samples
            if sample.name == "pushbutton_metrics_scrape_seconds"
        ]
    result = {
        "backend": benchlib.backend_label(),
        "runs": Run.objects.count(),
        "built": built,
        "first": first,
        "median": statistics.median(times),
        "cpu": statistics.median(cpu),
        "max": max(times),
        "collector": statistics.median(collector),
        "samples": samples,
        "bytes": len(response.content),
    }
    Path(args.result).write_text(json.dumps(result))


def main(args) -> int:
    backends = [args.only] if args.only else list(benchlib.BACKENDS)
    results = []
    for backend in backends:
        env = benchlib.backend_env(backend, name="metrics")
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            options = ["--result", out.name, "--runs", str(args.runs), "--repeat", str(args.repeat)]
            done = benchlib.backend_run(str(Path(__file__).resolve()), backend, env, options)
            if done.returncode != 0:
                print(f"{backend}: the bench process failed ({done.returncode}).", file=sys.stderr)
                return done.returncode
            results.append(json.loads(Path(out.name).read_text()))
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rows = [
        [r["backend"], f"{r['runs']:,}", f"{r['samples']:,}", f"{r['bytes'] / 1024:.0f}",
         f"{r['first'] * 1000:.0f}", f"{r['collector'] * 1000:.0f}",
         f"{r['median'] * 1000:.0f}", f"{r['max'] * 1000:.0f}", f"{r['cpu'] * 1000:.0f}",
         "meets" if r["median"] < TARGET_SECONDS else "MISSES"]
        for r in results
    ]  # fmt: skip
    print(
        benchlib.table(
            ["backend", "runs", "samples", "KiB", "first scrape ms", "queries ms",
             "scrape median ms", "max ms", "web CPU ms", "< 250 ms"],
            rows,
        )
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--only", choices=benchlib.BACKENDS)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.backend:
        backend_main(args)
    else:
        sys.exit(main(args))
