"""The run page of a run with 200,000 output lines: time, size, and what it holds.

Creates (or reuses) a finished Run whose RunEvents, bulk-inserted, print
200,000 coloured lines (4 per event, like Ansible's `ok: [host] => {...}`),
then, through Django's test Client logged in as an auditor (who may read
every run; in-process, so the time measured is the server's), times:

- the run page GET /runs/<id>/ (first screen; target < 1 s) with its HTML
  size and the number of line elements in it (it must not hold all lines);
- the live-log poll GET /runs/<id>/log/?after=<counter>, with nothing new and
  with 500 events to catch up on;
- "Show earlier lines" GET /runs/<id>/log/earlier/?before=<line> from the
  first line shown, from the middle and from near the start;
- a `#L123` link to a line the page does not hold: the window around it,
  GET /runs/<id>/log/window/?line=<line>, at line 1 and in the middle, and
  "Show later lines" below a window, GET /runs/<id>/log/later/?after=<line>;
- search over the whole log, GET /runs/<id>/log/search/?q=..., for a text on one
  line and for one on a quarter of all lines (its "lines" column: the matches; the
  first page lists 10,000 lines), and the count of the latter's every match, asked
  for apart, GET /runs/<id>/log/search/count/?q=...;
- the log download (streams all lines), for scale.

    .venv/bin/python bench/runpage.py [--lines 10000,200000,1000000] [--postgres]
        [--repeat 5] [--fresh]

Each size gets its own run; a last table puts the figures that must not grow with
the log side by side, with the SQL queries of each request.
"""

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import benchlib

LINES_PER_EVENT = 4
TARGET_SECONDS = 1.0
LINE_ELEMENT = re.compile(rb'<div class="line[ "]')
GREEN, RED, RESET = "\x1b[0;32m", "\x1b[0;31m", "\x1b[0m"


def event_stdout(n: int, failed: bool) -> str:
    """Four lines of Ansible-like output, coloured as ANSIBLE_FORCE_COLOR prints them."""
    colour, word = (RED, "failed") if failed else (GREEN, "ok")
    host = f"web{n % 8 + 1}.example.com"
    return "\r\n".join(
        [
            f"{colour}{word}: [{host}] => (item=release-{n}) => {{{RESET}",
            f'{colour}    "changed": false,{RESET}',
            f'{colour}    "msg": "Checked release-{n} on {host}: <files> & \\"links\\""{RESET}',
            f"{colour}}}{RESET}",
        ]
    )


def fixtures(lines: int, *, fresh: bool):
    """An auditor, and a finished run with `lines` lines of output (reused when present)."""
    from django.db import connection
    from django.utils import timezone

    from apps.accounts.models import Role, User
    from apps.catalog.constants import ActionKind
    from apps.catalog.models import Action, PlaybookSource, PlaybookVersion, Service
    from apps.environments.models import Environment
    from apps.runs.constants import RunStatus
    from apps.runs.models import Run, RunEvent
    from tests.factories import RunFactory

    # An auditor reads every run, whatever teams and grants say.
    reader, _ = User.objects.get_or_create(
        username="bench-auditor", defaults={"role": Role.AUDITOR}
    )
    source, _ = PlaybookSource.objects.get_or_create(
        name="bench-runpage", defaults={"url": "/nonexistent"}
    )
    version, _ = PlaybookVersion.objects.get_or_create(
        source=source,
        commit="0" * 40,
        path="site.yml",
        defaults={"content_hash": "0" * 64, "approved_at": timezone.now()},
    )
    service, _ = Service.objects.get_or_create(slug="bench-runpage", defaults={"name": "runpage"})
    environment, _ = Environment.objects.get_or_create(
        slug="bench-runpage",
        defaults={
            "name": "Bench run page",
            "order": 1001,
            "inventory": {"all": {"hosts": {"localhost": {"ansible_connection": "local"}}}},
        },
    )
    action, _ = Action.objects.get_or_create(
        service=service,
        slug="big-log",
        defaults={"label": "Big log", "kind": ActionKind.DEPLOY, "playbook_version": version},
    )
    action.environments.add(environment)
    events = lines // LINES_PER_EVENT
    run = (
        Run.objects.filter(action=action, line_count=events * LINES_PER_EVENT, event_count=events)
        .order_by("-pk")
        .first()
    )
    if run and not fresh and RunEvent.objects.filter(run=run).count() == events:
        return reader, run, None

    now = timezone.now()
    run = RunFactory(
        action=action,
        environment=environment,
        parameters={"version": "1.2.3"},
        version="1.2.3",
        requested_by=reader,
        status=RunStatus.SUCCESSFUL,
        started_at=now,
        finished_at=now,
        rc=0,
    )
    started = time.perf_counter()
    batch = []
    for n in range(1, events + 1):
        failed = n % 997 == 0
        batch.append(
            RunEvent(
                run=run,
                counter=n,
                event="runner_item_on_failed" if failed else "runner_item_on_ok",
                created=now,
                host=f"web{n % 8 + 1}.example.com",
                play="Deploy",
                task=f"Check release (task {n // 1000})",
                start_line=(n - 1) * LINES_PER_EVENT,
                end_line=n * LINES_PER_EVENT,
                stdout=event_stdout(n, failed),
                failed=failed,
                data={"res": {"changed": False, "msg": f"Checked release-{n}"}},
            )
        )
        if len(batch) == 5000:
            RunEvent.objects.bulk_create(batch)
            batch = []
    RunEvent.objects.bulk_create(batch)
    Run.objects.filter(pk=run.pk).update(event_count=events, line_count=events * LINES_PER_EVENT)
    # What the database's own statistics would say within a minute of so many rows (the
    # autovacuum's ANALYZE on PostgreSQL): without them, PostgreSQL guesses ~100 events
    # for the run and reads all of them for a rare search term, in order, rather than
    # asking the trigram index (1.4 s instead of 0.13 s at 1,000,000 lines).
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE runs_runevent")
    run.refresh_from_db()
    return reader, run, time.perf_counter() - started


def timed_get(client, url: str, repeat: int) -> dict:
    """The first (cold) and median server times of GET `url` (wall and this process's
    CPU: Python's and SQLite's work, not PostgreSQL's), its size and line elements."""
    times, cpus = [], []
    for _ in range(repeat + 1):
        started, cpu = time.perf_counter(), time.process_time()
        response = client.get(url)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        times.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url} answered {response.status_code}")
    return {
        "url": url,
        "cold": times[0],
        "median": statistics.median(times[1:]),
        "cpu": statistics.median(cpus[1:]),
        "bytes": len(body),
        "line_elements": len(LINE_ELEMENT.findall(body)),
        "body": body,
    }


def backend_main(args) -> None:
    benchlib.django_setup()
    results = [measure(lines, args) for lines in sizes(args.lines)]
    Path(args.result).write_text(json.dumps(results))


def queries_of(client, url: str) -> int:
    """How many SQL queries GET `url` runs (the same, whatever the log's size, where the
    work must not grow with it)."""
    from django.db import connection

    queries = []

    def count(execute, sql, *rest):
        queries.append(sql)
        return execute(sql, *rest)

    with connection.execute_wrapper(count):
        response = client.get(url)
        if response.streaming:
            b"".join(response.streaming_content)
    return len(queries)


def measure(lines: int, args) -> dict:
    from django.conf import settings
    from django.test import Client

    from apps.runs.selectors import run_log_tail

    backend = benchlib.backend_label()
    reader, run, insert_seconds = fixtures(lines, fresh=args.fresh)
    print(
        f"[{backend}] run #{run.pk}: {run.line_count:,} lines in {run.event_count:,} events"
        + (f" (inserted in {insert_seconds:.1f} s)" if insert_seconds else " (reused)"),
        flush=True,
    )
    settings.STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns without it
    client = Client(SERVER_NAME="localhost")
    client.force_login(reader)

    page = timed_get(client, f"/runs/{run.pk}/", args.repeat)
    shown = [int(n) for n in re.findall(rb'<div class="line[^"]*" id="L(\d+)"', page["body"])]
    earlier = re.search(rb"log/earlier/\?before=(\d+)", page["body"])
    _, last_counter = run_log_tail(run=run)

    endpoints = [
        ("run page (first screen)", page),
        ("log poll, nothing new", f"/runs/{run.pk}/log/?after={last_counter}"),
        ("log poll, 500 events new", f"/runs/{run.pk}/log/?after={last_counter - 500}"),
        (
            "earlier lines, from first shown",
            f"/runs/{run.pk}/log/earlier/?before={int(earlier.group(1)) if earlier else 1}",
        ),
        ("earlier lines, middle", f"/runs/{run.pk}/log/earlier/?before={run.line_count // 2}"),
        ("earlier lines, near start", f"/runs/{run.pk}/log/earlier/?before=2001"),
        ("window around line 1 (#L1)", f"/runs/{run.pk}/log/window/?line=1"),
        ("window around the middle", f"/runs/{run.pk}/log/window/?line={run.line_count // 2}"),
        ("later lines, from the middle", f"/runs/{run.pk}/log/later/?after={run.line_count // 2}"),
        ("search, one line matches", f"/runs/{run.pk}/log/search/?q=(item=release-12345)"),
        ("search, 1 line in 4 matches", f"/runs/{run.pk}/log/search/?q=changed"),
        # The count of every match, asked for apart once the first page is shown.
        ("search count, 1 line in 4", f"/runs/{run.pk}/log/search/count/?q=changed"),
        ("log download (all lines)", f"/runs/{run.pk}/log/download/"),
    ]
    if args.only:
        wanted = [word.strip() for word in args.only.split(",")]
        endpoints = [
            e for e in endpoints if e[0] == endpoints[0][0] or any(w in e[0] for w in wanted)
        ]
    rows = []
    for label, target in endpoints:
        result = target if isinstance(target, dict) else timed_get(client, target, args.repeat)
        if label.startswith("log download"):
            result["line_elements"] = result["body"].count(b"\n")
        elif label.startswith("search"):
            # The matches counted; those listed when the first page did not count them.
            found = json.loads(result["body"])
            result["line_elements"] = (
                found["total"]
                if found["total"] is not None
                else sum(count for _, count in found["hits"])
            )
        result.pop("body")
        result["queries"] = queries_of(client, result["url"])
        rows.append({"label": label, **result})
    return {
        "backend": backend,
        "load": os.getloadavg(),
        "run": run.pk,
        "lines": run.line_count,
        "events": run.event_count,
        "shown_first": min(shown) if shown else None,
        "shown_last": max(shown) if shown else None,
        "earlier_button": bool(earlier),
        "queries": rows[0]["queries"],
        "rows": rows,
    }


def sizes(text: str) -> list[int]:
    return [int(n.replace("_", "")) for n in str(text).split(",") if n.strip()]


def main(args) -> int:
    backends = ["sqlite", "postgres"] if args.postgres else ["sqlite"]
    results = []
    for backend in backends:
        env = benchlib.backend_env(backend, name="runpage")
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            options = ["--result", out.name, "--lines", args.lines]
            options += ["--repeat", str(args.repeat)] + (["--fresh"] if args.fresh else [])
            options += ["--only", args.only] if args.only else []
            done = benchlib.backend_run(str(Path(__file__).resolve()), backend, env, options)
            if done.returncode != 0:
                print(f"{backend}: the bench process failed ({done.returncode}).", file=sys.stderr)
                return done.returncode
            results.extend(json.loads(Path(out.name).read_text()))

    for r in results:
        page = r["rows"][0]
        verdict = "meets" if page["median"] < TARGET_SECONDS else "MISSES"
        print(
            f"\n{r['backend']}: run #{r['run']} with {r['lines']:,} lines in {r['events']:,} "
            f"events. The first screen holds lines {r['shown_first']:,}-{r['shown_last']:,} "
            f"({page['line_elements']:,} line elements, not {r['lines']:,}; "
            f"'Show earlier lines' button: {'yes' if r['earlier_button'] else 'NO'}), "
            f"{r['queries']} queries, {page['median'] * 1000:.0f} ms: {verdict} the target "
            f"of < {TARGET_SECONDS * 1000:.0f} ms.\n"
        )
        print(
            benchlib.table(
                ["endpoint", "median ms", "CPU ms", "cold ms", "KB", "lines", "queries"],
                [
                    [
                        row["label"],
                        f"{row['median'] * 1000:.1f}",
                        f"{row['cpu'] * 1000:.1f}",
                        f"{row['cold'] * 1000:.1f}",
                        f"{row['bytes'] / 1024:,.1f}",
                        f"{row['line_elements']:,}",
                        row["queries"],
                    ]
                    for row in r["rows"]
                ],
            )
        )
    scaling(results)
    return 0


SCALING_ROWS = {
    "run page (first screen)": "run page, first screen",
    "log poll, nothing new": "live poll, nothing new",
    "log poll, 500 events new": "live poll, 500 new events",
    "search, one line matches": "search, a term on 1 line",
    "search, 1 line in 4 matches": "search, a term on 1 line in 4",
    "search count, 1 line in 4": "search, its count (apart)",
    "log download (all lines)": "log download",
}


def scaling(results: list[dict]) -> None:
    """The figures that must not grow with the log, side by side for each size: median
    ms (queries, CPU ms of this process); the download as lines/s, wall and per CPU
    second; the load average when each size was measured."""
    for backend in dict.fromkeys(r["backend"] for r in results):
        runs = [r for r in results if r["backend"] == backend]
        rows = []
        for label, name in SCALING_ROWS.items():
            cells = [name]
            for r in runs:
                row = next((row for row in r["rows"] if row["label"] == label), None)
                if row is None:  # left out by --only
                    continue
                if label.startswith("log download"):
                    cells.append(
                        f"{r['lines'] / row['median']:,.0f} lines/s "
                        f"({r['lines'] / row['cpu']:,.0f} per CPU s)"
                    )
                else:
                    cells.append(
                        f"{row['median'] * 1000:,.1f} ms ({row['queries']} q, "
                        f"{row['cpu'] * 1000:,.1f} CPU)"
                    )
            if len(cells) > 1:
                rows.append(cells)
        rows.append(
            ["load average (1, 5, 15 min)"]
            + [" ".join(f"{n:.1f}" for n in r["load"]) for r in runs]
        )
        print(
            f"\n{backend}: scaling (median of each request; q = SQL queries it ran; CPU ms of "
            "the bench process, PostgreSQL's own not in it)"
        )
        print(benchlib.table(["figure", *[f"{r['lines']:,} lines" for r in runs]], rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", default="10000,200000,1000000", help="sizes, comma-separated")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL too")
    parser.add_argument("--repeat", type=int, default=5, help="timed requests per endpoint")
    parser.add_argument("--fresh", action="store_true", help="insert a new run even if one exists")
    parser.add_argument(
        "--only",
        help="the requests whose label holds one of these words, comma-separated (and the "
        "run page): e.g. poll,download",
    )
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.backend:
        backend_main(args)
    else:
        sys.exit(main(args))
