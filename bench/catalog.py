"""The catalog, what-runs-where and the runs list at 200 services: time and queries.

Creates (or reuses) 200 services of 20 teams on five environments (QA and production
accept only verified versions), each with Deploy, Smoke test and Roll back, and a
history of `--runs` runs (default 100,000: deploys, verifications, rollbacks, failures
and dry runs over a year), bulk-inserted. Then, through Django's test Client (in-process,
so the time is the server's), times each page as two people:

- **dev**: a developer in two teams (20 services), whose teams may run every service on
  test and QA and see every service on production: the most buttons and permission
  questions;
- **auditor**: sees everything, runs nothing.

Pages: the catalog (all, a search, a team, "mine", one environment), what runs where
(all, a team, "mine") and the runs list (first page, a team, "mine", a search, page 100).
Prints the median and p95 of `--repeat` requests after a warm one, and the SQL queries
of a request, and the median CPU time of this process per request (the server's work in
Python, and SQLite's; PostgreSQL's own CPU is not in it): on a loaded machine, read it
rather than the wall time. The catalog shows 25 services a page and what runs where 25
(the user's own teams first): a page's cost follows the page, not the size of the
catalog. Target: **< 200 ms** server time per page.

    .venv/bin/python bench/catalog.py [--runs 100000] [--only sqlite|postgres] [--repeat 10]
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

TARGET_SECONDS = 0.2
SERVICES = 200
TEAMS = 20
ENVIRONMENTS = ("test", "qa", "staging", "canary", "production")
VERIFIED = ("qa", "production")  # require_verified
POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/pushbutton_bench_catalog"

PAGES = [
    ("catalog", "/"),
    ("catalog, search", "/?q=svc01"),
    ("catalog, a team", "/?team=team03"),
    ("catalog, mine", "/?mine=1"),
    ("catalog, production", "/?environment=production"),
    ("what runs where", "/what-runs-where/"),
    ("what runs where, a team", "/what-runs-where/?team=team03"),
    ("what runs where, mine", "/what-runs-where/?mine=1"),
    ("runs", "/runs/"),
    ("runs, a team", "/runs/?team=team03"),
    ("runs, mine", "/runs/?mine=1"),
    ("runs, search", "/runs/?q=svc01"),
    ("runs, page 100", "/runs/?page=100"),
]


def _catalog(total: int) -> None:
    """Teams, people, services, actions, environments, grants and `total` runs, unless
    they are there already."""
    from apps.accounts.constants import Right, Role
    from apps.accounts.models import Grant, Membership, Team, User
    from apps.catalog.models import Action, Service
    from apps.environments.models import Environment
    from apps.runs.models import Run

    if Run.objects.count() >= total and Service.objects.count() >= SERVICES:
        return
    Run.objects.all().delete()
    User.objects.get_or_create(username="bench-auditor", defaults={"role": Role.AUDITOR})
    dev, _ = User.objects.get_or_create(username="bench-dev", defaults={"role": Role.DEVELOPER})
    version = benchlib.bench_version()
    envs = [
        Environment.objects.update_or_create(
            slug=slug,
            defaults={"name": slug.title(), "order": i, "require_verified": slug in VERIFIED},
        )[0]
        for i, slug in enumerate(ENVIRONMENTS)
    ]
    teams = [
        Team.objects.get_or_create(slug=f"team{i:02}", defaults={"name": f"Team {i:02}"})[0]
        for i in range(TEAMS)
    ]
    for team in teams[3:5]:
        Membership.objects.get_or_create(team=team, user=dev)
    for team in teams[3:5]:
        for env in envs:
            right = Right.RUN if env.slug in ("test", "qa") else Right.VIEW
            if env.slug in ("test", "qa", "production"):
                Grant.objects.get_or_create(team=team, service=None, environment=env, right=right)
    actions = []
    words = ("billing", "search", "checkout", "images", "mail", "auth", "reports", "feeds")
    for i in range(SERVICES):
        service, _ = Service.objects.get_or_create(
            slug=f"svc{i:03}",
            defaults={
                "name": f"svc{i:03}",
                "team": teams[i % TEAMS],
                "description": f"The {words[i % len(words)]} service, part {i // len(words)}.",
            },
        )
        for position, (slug, kind) in enumerate(
            (("deploy", "deploy"), ("smoke-test", "verify"), ("rollback", "rollback"))
        ):
            action, _ = Action.objects.get_or_create(
                service=service, slug=slug,
                defaults={"label": slug.replace("-", " ").capitalize(), "kind": kind,
                          "playbook_version": version, "position": position,
                          "form": [{"name": "version", "type": "string", "required": True}]
                          if kind == "deploy" else [],
                          "version_field": "version" if kind == "deploy" else ""},
            )  # fmt: skip
            action.environments.set(envs)
            actions.append(action)

    def run(rng, now):
        finished = now - timedelta(seconds=rng.randrange(365 * 86400))
        return {
            "version": f"1.{rng.randrange(40)}.{rng.randrange(5)}",
            "status": "successful" if rng.random() < 0.9 else "failed",
            "check_mode": rng.random() < 0.05,
            "requested_by": dev,
            "requested_by_name": "bench-dev",
            "created_at": finished - timedelta(minutes=3),
            "started_at": finished - timedelta(minutes=2),
            "finished_at": finished,
            "source_commit": "ab" * 20 if rng.random() < 0.7 else "",
        }

    benchlib.runs_bulk_load(total, [(a, e) for a in actions for e in envs], run)


def backend_main(args) -> None:
    benchlib.django_setup()
    from django.test import Client

    from apps.accounts.models import User
    from apps.runs.models import Run

    started = time.perf_counter()
    _catalog(args.runs)
    built = time.perf_counter() - started
    rows = []
    for who in ("bench-dev", "bench-auditor"):
        client = Client(SERVER_NAME="localhost")
        client.force_login(User.objects.get(username=who))
        for name, url in PAGES:
            timed = benchlib.page_time(client, url, args.repeat)
            rows.append({"who": who.removeprefix("bench-"), "name": name, **timed})
    result = {"backend": benchlib.backend_label(), "runs": Run.objects.count()}
    Path(args.result).write_text(json.dumps({**result, "built": built, "rows": rows}))


def main(args) -> int:
    backends = [args.only] if args.only else list(benchlib.BACKENDS)
    results = []
    for backend in backends:
        env = benchlib.backend_env(backend, name="catalog")
        env["VAR_DIR"] = str(benchlib.BASE / "var" / f"bench-catalog-{backend}")
        if backend == "postgres":
            env["DATABASE_URL"] = args.database
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
        print(f"\n{r['backend']}: {r['runs']:,} runs (built in {r['built']:.0f} s)")
        table = [
            [row["who"], row["name"], f"{row['median'] * 1000:.0f}", f"{row['p95'] * 1000:.0f}",
             f"{row['cpu'] * 1000:.0f}", row["queries"], f"{row['kb']:.0f}",
             "meets" if row["median"] < TARGET_SECONDS else "MISSES"]
            for row in r["rows"]
        ]  # fmt: skip
        print(
            benchlib.table(
                ["as", "page", "median ms", "p95 ms", "cpu ms", "queries", "KiB", "< 200 ms"], table
            )
        )
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--only", choices=benchlib.BACKENDS)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument(
        "--database",
        default=os.environ.get("BENCH_POSTGRES_URL", POSTGRES_URL),
        help="PostgreSQL URL (created when missing)",
    )
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.backend:
        backend_main(args)
    else:
        sys.exit(main(args))
