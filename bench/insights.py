"""The insights page and API over a long run history: time per request.

Creates (or reuses) a history of `--runs` runs (default 1,000,000) across 200 services
and five environments over a year (deploys, verifications, some rollbacks and failures,
provenance on most), bulk-inserted; then, through Django's test Client signed in as an
auditor (who sees everything; in-process, so the time is the server's), times:

- the insights page, overall, over 30 and 90 days (production);
- the page for one service, and for one team;
- GET /api/v1/insights/ (JSON) and its CSV.

Target: **< 300 ms** per request on PostgreSQL; SQLite reported too.

    .venv/bin/python bench/insights.py [--runs 1000000] [--only sqlite|postgres] [--repeat 5]
"""

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import benchlib

TARGET_SECONDS = 0.3
SERVICES = 200
ENVIRONMENTS = ("test", "qa", "staging", "canary", "production")


def _history(total: int) -> None:
    """Services, actions, environments and `total` runs, unless they are there already."""
    from apps.accounts.constants import Role
    from apps.accounts.models import Team, User
    from apps.catalog.models import Action, Service
    from apps.environments.models import Environment
    from apps.runs.models import Run

    if Run.objects.count() >= total:
        return
    Run.objects.all().delete()
    User.objects.get_or_create(username="bench-auditor", defaults={"role": Role.AUDITOR})
    dev, _ = User.objects.get_or_create(username="bench-dev")
    version = benchlib.bench_version()
    envs = [
        Environment.objects.get_or_create(slug=slug, defaults={"name": slug.title(), "order": i})[0]
        for i, slug in enumerate(ENVIRONMENTS)
    ]
    teams = [Team.objects.get_or_create(slug=f"team{i}", name=f"Team {i}")[0] for i in range(20)]
    actions = []
    for i in range(SERVICES):
        service, _ = Service.objects.get_or_create(
            slug=f"svc{i:03}", defaults={"name": f"svc{i:03}", "team": teams[i % 20]}
        )
        for slug, kind in (("deploy", "deploy"), ("smoke", "verify")):
            action, _ = Action.objects.get_or_create(
                service=service, slug=slug,
                defaults={"label": slug.title(), "kind": kind, "playbook_version": version,
                          "version_field": "version" if kind == "deploy" else ""},
            )  # fmt: skip
            action.environments.set(envs)
            actions.append(action)

    def run(rng, now):
        finished = now - timedelta(seconds=rng.randrange(365 * 86400))
        committed = finished - timedelta(hours=rng.randrange(1, 200))
        return {
            "version": f"1.{rng.randrange(400)}.{rng.randrange(10)}",
            "status": "successful" if rng.random() < 0.9 else "failed",
            "requested_by": dev,
            "requested_by_name": "bench-dev",
            "created_at": finished - timedelta(minutes=3),
            "started_at": finished - timedelta(minutes=2),
            "finished_at": finished,
            "source_commit": "ab" * 20 if rng.random() < 0.7 else "",
            "source_committed_at": committed if rng.random() < 0.7 else None,
        }

    benchlib.runs_bulk_load(total, [(a, e) for a in actions for e in envs], run)


def backend_main(args) -> None:
    benchlib.django_setup()
    from django.test import Client

    from apps.accounts.models import User
    from apps.insights.changes import rebuild_all
    from apps.insights.models import Change
    from apps.runs.models import Run

    started = time.perf_counter()
    _history(args.runs)
    built = time.perf_counter() - started
    rebuilt = None
    if not Change.objects.exists():  # the runs were written around the portal's services
        started = time.perf_counter()
        count = rebuild_all()
        rebuilt = time.perf_counter() - started
        print(f"  {count:,} changes worked out in {rebuilt:.1f} s")
        benchlib.analyze()
    client = Client(SERVER_NAME="localhost")
    client.force_login(User.objects.get(username="bench-auditor"))
    urls = [
        "/insights/?days=30",
        "/insights/?days=90",
        "/insights/?days=30&service=svc007",
        "/insights/?days=30&team=team3",
        "/api/v1/insights/?days=30",
        "/api/v1/insights/?days=90&output=csv",
    ]
    rows = [benchlib.page_time(client, url, args.repeat) for url in urls]
    result = {"backend": benchlib.backend_label(), "runs": Run.objects.count()}
    Path(args.result).write_text(
        json.dumps({**result, "built": built, "rebuilt": rebuilt, "rows": rows})
    )


def main(args) -> int:
    backends = [args.only] if args.only else list(benchlib.BACKENDS)
    results = []
    for backend in backends:
        env = benchlib.backend_env(backend, name="insights")
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            options = ["--result", out.name, "--runs", str(args.runs), "--repeat", str(args.repeat)]
            done = benchlib.backend_run(str(Path(__file__).resolve()), backend, env, options)
            if done.returncode != 0:
                print(f"{backend}: the bench process failed ({done.returncode}).", file=sys.stderr)
                return done.returncode
            results.append(json.loads(Path(out.name).read_text()))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average: {load}")
    for r in results:
        rebuilt = f", changes worked out in {r['rebuilt']:.0f} s" if r["rebuilt"] else ""
        built = f"history built in {r['built']:.0f} s{rebuilt}"
        print(f"\n{r['backend']}: {r['runs']:,} runs ({built})")
        table = [
            [row["url"], f"{row['median'] * 1000:.0f}", f"{row['max'] * 1000:.0f}",
             "meets" if row["median"] < TARGET_SECONDS else "MISSES"]
            for row in r["rows"]
        ]  # fmt: skip
        print(benchlib.table(["request", "median ms", "max ms", "< 300 ms"], table))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--only", choices=benchlib.BACKENDS)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.backend:
        backend_main(args)
    else:
        sys.exit(main(args))
