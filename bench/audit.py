"""The audit log at 1,000,000 rows on PostgreSQL: review pages, exports, verification.

With `--sizes 1000000,10000000`, each size in a database of its own, the review pages only
(the free-text searches among them; target < 50 ms at 10,000,000 rows), side by side.
Past 1,000,000 rows the rows are copies of the first million, a year later per copy, so
that 10,000,000 rows seed in minutes (the hash chain needs each row after the one before
it): the same mix of rows and of matches per row, but no chain to verify.

Seeds (or reuses) 1,000,000 audit rows with a valid hash chain, written with COPY
(rows of a year of deploys: requests, starts, ends, refusals, catalog changes,
sign-ins), then prints:

- filtered page time: GET /audit/?<filter> through Django's test Client signed
  in as an auditor (template, query, and the audit.search row it writes), first
  page and page 5,000 (keyset: as fast as the first); target < 100 ms;
- export rate: GET /audit/export/?format=csv (and jsonl) of all rows, streamed
  and read to the end, with the process's peak memory growth; target >= 50,000 rows/s;
- verify rate: the walk of `manage.py verify_audit` over every row, against a
  signed checkpoint of the head; target >= 100,000 rows/s.

    .venv/bin/python bench/audit.py [--rows 1000000] [--fresh] [--repeat 5]
        [--only pages,exports,verify] [--sizes 1000000,10000000]

PostgreSQL at BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/pushbutton_audit_bench).
"""

import argparse
import os
import random
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import benchlib

POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/pushbutton_audit_bench"
TEXT_INDEX = "audit_text_words_replace_trgm"  # migration 0009
TEXT_STATISTICS = 1000  # the sample migration 0009 sets for that index's statistics
# Rows seeded one by one with a valid hash chain; beyond them, copies (see _copy_rows).
CHAINED = 1_000_000
PAGE_TARGET_MS, EXPORT_TARGET, VERIFY_TARGET = 100, 50_000, 100_000
TEXT_TARGET_MS, TEXT_TARGET_ROWS = 50, 10_000_000  # a free-text search, at that size
SERVICES = [f"svc-{n}" for n in range(1, 41)]
ENVIRONMENTS = ["test", "qa", "production"]
ACTORS = [f"user-{n}" for n in range(1, 201)]
COLUMNS = (
    "id", "created_at", "actor_id", "actor_name", "via", "ip", "user_agent", "verb",
    "object_type", "object_id", "object_repr", "service", "environment", "details",
    "outcome", "prev_hash", "hash",
)  # fmt: skip


def _environment() -> None:
    os.environ["DATABASE_URL"] = os.environ.get("BENCH_POSTGRES_URL", POSTGRES_URL)
    os.environ["VAR_DIR"] = str(benchlib.BASE / "var" / "bench-audit")
    os.environ.setdefault("SECRET_KEY", "bench-secret-key-not-for-production")
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ["ALLOWED_HOSTS"] = "testserver"
    Path(os.environ["VAR_DIR"]).mkdir(parents=True, exist_ok=True)


def _drop_database() -> None:
    import dj_database_url
    import psycopg
    from psycopg import sql

    db = dj_database_url.parse(os.environ["DATABASE_URL"])
    with psycopg.connect(
        dbname="postgres",
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"] or "postgres",
        autocommit=True,
    ) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db["NAME"]))
        )


# --- seeding -------------------------------------------------------------------------
def _rows(count: int):
    """`count` plausible rows, oldest first, chained: canonical values then the hash."""
    from apps.audit.chain import GENESIS, canonical_time, row_hash

    rng = random.Random(4)
    start = datetime(2025, 11, 1, tzinfo=UTC)
    step = timedelta(days=365) / count
    prev, run_id = GENESIS, 0
    for sequence in range(1, count + 1):
        moment = start + step * sequence + timedelta(microseconds=rng.randrange(1000))
        service, environment = rng.choice(SERVICES), rng.choice(ENVIRONMENTS)
        actor_n = rng.randrange(1, len(ACTORS) + 1)
        actor, actor_id, via = f"user-{actor_n}", actor_n, rng.choice(("web", "api"))
        ip, outcome = f"10.{actor_n % 250}.{sequence % 250}.{actor_n % 200 + 1}", "success"
        roll = rng.random()
        if roll < 0.86:
            phase = sequence % 3
            if phase == 0:
                run_id += 1
            object_type, object_id = "runs.run", str(run_id)
            object_repr = f"Run #{run_id} Deploy on {environment}"
            version = f"1.{run_id % 40}.{run_id % 997}"
            if phase == 0:
                verb = "run.requested"
                details = {
                    "action": "deploy",
                    "parameters": {"version": version, "db_password": "••••"},
                    "check": False,
                    "playbook_commit": f"{run_id * 7919:040x}",
                    "playbook_path": "deploy.yml",
                    "content_hash": f"{run_id * 104729:064x}",
                }
            elif phase == 1:
                verb, actor, actor_id, via, ip = "run.started", "", None, "system", None
                details = {"worker": f"celery@worker{run_id % 4}"}
            else:
                verb, actor, actor_id, via, ip = "run.finished", "", None, "system", None
                failed = rng.random() < 0.08
                outcome = "failure" if failed else "success"
                details = {
                    "status": "failed" if failed else "successful",
                    "rc": 2 if failed else 0,
                    "host_summary": {
                        f"web{h}.example.com": {"ok": 7, "changed": 3, "failed": int(failed)}
                        for h in range(1, 3)
                    },
                    "error": "",
                }
        elif roll < 0.90:
            verb, outcome = "run.refused", "refused"
            object_type, object_id, object_repr = "catalog.action", "3", f"{service} / Deploy"
            details = {"reason": f"No grant to run on {environment}."}
        elif roll < 0.93:
            verb, object_type, via = "action.update", "catalog.action", "admin"
            object_id, object_repr, environment = "3", f"{service} / Deploy", ""
            details = {"changes": {"timeout": [600, 900 + sequence % 7]}, "action": "deploy"}
        elif roll < 0.99:
            verb = rng.choice(("auth.login", "auth.logout", "auth.login", "audit.search"))
            object_type, object_id, object_repr = "accounts.user", str(actor_n), actor
            service, environment, details = "", "", {}
        else:
            verb, outcome = "auth.login_failed", "refused"
            object_type = object_id = object_repr = service = environment = ""
            actor_id, details = None, {"tried": actor}
        values = [
            sequence, canonical_time(moment), actor_id, actor, via, ip,
            "Mozilla/5.0 (X11; Linux x86_64) Chrome/130.0" if ip else "", verb, object_type,
            object_id, object_repr, service, environment, details, outcome, prev,
        ]  # fmt: skip
        prev = row_hash(values)
        yield values, prev


def seed(count: int) -> None:
    from django.db import connection

    from apps.audit.chain import details_text
    from apps.audit.models import AuditHead

    started = time.monotonic()
    with connection.cursor() as cursor:
        # The text search's trigram index is built once after the rows, not row by row
        # (at 10,000,000 rows, hours instead of minutes); the same index as migration 0009.
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [TEXT_INDEX])
        text_index = cursor.fetchone()
        if text_index:
            cursor.execute(f"DROP INDEX {TEXT_INDEX}")
        copy_sql = f"COPY audit_auditevent ({', '.join(COLUMNS)}) FROM STDIN"
        with cursor.cursor.copy(copy_sql) as copy:
            last = None
            for values, digest in _rows(min(count, CHAINED)):
                row = list(values)
                row[13] = details_text(row[13])
                copy.write_row((*row, digest))
                last = (values[0], digest)
                if values[0] % 100_000 == 0:
                    print(f"  seeded {values[0]:,} rows", flush=True)
        for copy_number in range(1, -(-count // CHAINED)):
            _copy_rows(cursor, copy_number, min(CHAINED, count - copy_number * CHAINED))
            print(f"  seeded {copy_number * CHAINED + CHAINED:,} rows (copies)", flush=True)
        if count > CHAINED:
            cursor.execute("SELECT id, hash FROM audit_auditevent ORDER BY id DESC LIMIT 1")
            last = cursor.fetchone()
    AuditHead.objects.update_or_create(id=1, defaults={"last_id": last[0], "last_hash": last[1]})
    with connection.cursor() as cursor:
        if text_index:
            print(
                f"  rows in {time.monotonic() - started:.1f} s; building {TEXT_INDEX}", flush=True
            )
            cursor.execute("SET maintenance_work_mem = '1GB'")
            cursor.execute(text_index[0])
            _text_statistics(cursor)
        cursor.execute("ANALYZE audit_auditevent")
    print(f"Seeded {count:,} rows in {time.monotonic() - started:.1f} s.", flush=True)


def _text_statistics(cursor) -> bool:
    """Gives the text index the statistics migration 0009 gives it (a new index has the
    default sample, and a search's plan depends on it). Whether it had to."""
    cursor.execute(
        "SELECT a.attstattarget FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "WHERE c.relname = %s AND a.attnum = 1",
        [TEXT_INDEX],
    )
    row = cursor.fetchone()
    if row is None or row[0] == TEXT_STATISTICS:
        return False
    cursor.execute(f"ALTER INDEX {TEXT_INDEX} ALTER COLUMN 1 SET STATISTICS {TEXT_STATISTICS}")
    return True


def _copy_rows(cursor, number: int, rows: int) -> None:
    """Rows CHAINED * number + 1 on: a copy of the first `rows` chained rows, a year later
    per copy, its runs numbered on (the same mix of verbs, texts and matches per row).
    Their hashes are only unique, not a chain: verify is run at CHAINED rows or fewer."""
    year = f"{number * 365} days"
    cursor.execute(
        f"INSERT INTO audit_auditevent ({', '.join(COLUMNS)}) "  # noqa: S608 (constants)
        f"SELECT id + %(shift)s, created_at + %(year)s::interval, actor_id, actor_name, via, "
        "ip, user_agent, verb, object_type, CASE WHEN object_type = 'runs.run' THEN "
        "(object_id::bigint + %(runs)s)::text ELSE object_id END, object_repr, service, "
        "environment, details, outcome, prev_hash, "
        "encode(sha256(convert_to(hash || %(number)s::text, 'UTF8')), 'hex') "
        "FROM audit_auditevent WHERE id <= %(rows)s ORDER BY id",
        {"shift": number * CHAINED, "year": year, "runs": number * CHAINED, "rows": rows,
         "number": number},
    )  # fmt: skip


# --- measuring -------------------------------------------------------------------------
class PeakMemory:
    """The process's resident memory, sampled every 10 ms while a block runs."""

    def __enter__(self):
        import psutil

        self.process = psutil.Process()
        self.start = self.peak = self.process.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.01)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / 2**20


def _deep_page(query: dict, size: int = 50) -> tuple[int, int | None]:
    """Page 5,000 of a filter, or its last page when it has fewer: (number, the `before`
    cursor that opens it, found once by offset)."""
    from apps.audit.selectors import audit_event_filter

    ids = audit_event_filter(filters=query).values_list("id", flat=True)
    pages = -(-min(ids.count(), 5000 * size) // size)
    if pages < 2:
        return pages, None
    return pages, ids[(pages - 1) * size - 1]


def pages(client, repeat: int, total: int) -> list[list]:
    from urllib.parse import urlencode

    from apps.audit.forms import AuditFilterForm

    day = datetime(2026, 5, 4, tzinfo=UTC)
    filters = [
        ("no filter", {}),
        ("service + environment", {"service": "svc-7", "environment": "production"}),
        ("verb run.refused", {"verb": "run.refused"}),
        ("actor", {"actor": "user-42"}),
        ("outcome failure, production", {"outcome": "failure", "environment": "production"}),
        ("one day", {"since": day.date().isoformat(), "until": day.date().isoformat()}),
        ("a run's rows (object)", {"object_type": "runs.run", "object_id": "123456"}),
        ("verb family run.*", {"verb": "run.*"}),
        ("text: a version", {"q": "1.7.4"}),
        ("text: a commit", {"q": f"{123456 * 7919:x}"}),
        ("text: a reason", {"q": "no grant to run on qa"}),
    ]
    rows = []
    for label, query in filters:
        form = AuditFilterForm(query)
        assert form.is_valid(), form.errors
        deep, cursor = _deep_page(form.filters())
        for page_label, extra in (("1", {}), (f"{deep:,}", {"before": cursor} if cursor else None)):
            if extra is None:
                continue
            url = f"/audit/?{urlencode({**query, **extra})}"
            times, count = [], 0
            for _ in range(repeat):
                started = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, (url, response.status_code)
                count = response.content.count(b'<tr data-verb="')
            ms = benchlib.median(times)
            target = PAGE_TARGET_MS
            if label.startswith("text") and total >= TEXT_TARGET_ROWS:
                target = TEXT_TARGET_MS
            rows.append([label, page_label, count, f"{ms:.1f}", "ok" if ms < target else "SLOW"])
    return rows


def exports(client, total: int) -> list[list]:
    rows = []
    for kind in ("csv", "jsonl"):
        with PeakMemory() as memory:
            started = time.perf_counter()
            response = client.get(f"/audit/export/?format={kind}")
            size = lines = 0
            for chunk in response.streaming_content:
                size += len(chunk)
                lines += chunk.count(b"\n")
            seconds = time.perf_counter() - started
        exported = lines - (1 if kind == "csv" else 0)
        rate = exported / seconds
        rows.append(
            [
                kind,
                f"{exported:,}",
                f"{size / 2**20:,.0f}",
                f"{seconds:.1f}",
                f"{rate:,.0f}",
                f"{memory.growth_mb:.0f}",
                "ok" if rate >= EXPORT_TARGET and exported >= total else "SLOW",
            ]
        )
    return rows


def verify() -> list:
    from django.conf import settings

    from apps.audit.checkpoints import audit_checkpoint_create, key_generate
    from apps.audit.verification import audit_verify, checkpoints_load

    private, _public = key_generate()
    settings.AUDIT_SIGNING_KEY = private
    settings.AUDIT_PUBLIC_KEY = ""
    with tempfile.TemporaryDirectory() as tmp:
        settings.AUDIT_CHECKPOINT_FILE = str(Path(tmp) / "checkpoints.jsonl")
        audit_checkpoint_create()
        checkpoints, notes = checkpoints_load(Path(settings.AUDIT_CHECKPOINT_FILE))
        with PeakMemory() as memory:
            report = audit_verify(checkpoints=checkpoints, notes=notes)
    assert report.ok, report.problems
    return [
        f"{report.rows_checked:,}",
        f"{report.duration:.1f}",
        f"{report.rate:,.0f}",
        f"{memory.growth_mb:.0f}",
        "ok" if report.rate >= VERIFY_TARGET else "SLOW",
    ]


def measure(args) -> dict:
    """The figures of the bench database (seeded first when empty), printed as they come."""
    from django.test import Client

    from apps.accounts.models import Role, User
    from apps.audit.models import AuditEvent

    have = AuditEvent.objects.count()
    if have < args.rows:
        if have:
            sys.exit(f"The bench database has {have:,} rows: run with --fresh to seed again.")
        seed(args.rows)
    from django.db import connection

    with connection.cursor() as cursor:
        if _text_statistics(cursor):  # a database an earlier bench seeded without them
            cursor.execute("ANALYZE audit_auditevent")
    total = AuditEvent.objects.count()
    auditor, _ = User.objects.get_or_create(
        username="bench-auditor", defaults={"role": Role.AUDITOR}
    )
    client = Client()
    client.force_login(auditor)
    load = ", ".join(f"{n:.1f}" for n in os.getloadavg())
    machine = f"load average {load}, {os.cpu_count()} CPUs"
    print(f"\nThe audit log on PostgreSQL, {total:,} rows ({machine}).\n")
    done = {"rows": total, "load": load}
    if "pages" in args.only:
        done["pages"] = pages(client, args.repeat, total)
        print(
            f"Filtered page (GET /audit/?..., median of {args.repeat}; target < "
            f"{PAGE_TARGET_MS} ms; text search < {TEXT_TARGET_MS} ms at {TEXT_TARGET_ROWS:,} rows)"
        )
        print(benchlib.table(["filter", "page", "rows", "ms", ""], done["pages"]))
    if "exports" in args.only:
        print(f"\nExport of every row (streamed; target >= {EXPORT_TARGET:,} rows/s)")
        print(
            benchlib.table(
                ["format", "rows", "MiB", "s", "rows/s", "peak memory growth MiB", ""],
                exports(client, total),
            )
        )
    if "verify" in args.only and total > CHAINED:
        print(f"\nverify_audit: not run, rows past {CHAINED:,} are copies, not a chain.")
    elif "verify" in args.only:
        target = f"target >= {VERIFY_TARGET:,} rows/s"
        print(f"\nverify_audit (every row, against a signed checkpoint; {target})")
        print(benchlib.table(["rows", "s", "rows/s", "peak memory growth MiB", ""], [verify()]))
    return done


def scaling(args) -> None:
    """Each size in a database (and a process) of its own, then the pages side by side."""
    import json
    import subprocess

    results = []
    for size in args.sizes:
        env = {**os.environ, "BENCH_POSTGRES_URL": f"{POSTGRES_URL}_{size}"}
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            command = [
                sys.executable, __file__, "--rows", str(size), "--repeat", str(args.repeat),
                "--only", "pages", "--result", out.name,
            ]  # fmt: skip
            subprocess.run(command, env=env, check=True)
            results.append(json.loads(Path(out.name).read_text()))
    labels = [f"{r['rows']:,} rows (load {r['load'].split(',')[0]})" for r in results]
    rows = []
    for n, (label, page, *_rest) in enumerate(results[0]["pages"]):
        cells = [f"{r['pages'][n][3]} ms ({r['pages'][n][2]} rows)" for r in results]
        rows.append([label, "1" if page == "1" else "deep", *cells])
    print(f"\nScaling: filtered pages, median of {args.repeat} (target < {PAGE_TARGET_MS} ms; text")
    print(f"search < {TEXT_TARGET_MS} ms at {TEXT_TARGET_ROWS:,} rows)")
    print(benchlib.table(["filter", "page", *labels], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(n) for n in text.split(",")],
        help="comma-separated row counts (e.g. 1000000,10000000): each in a database of its "
        "own, the pages only, then a table of them side by side",
    )
    parser.add_argument(
        "--only",
        type=lambda text: set(text.split(",")),
        default={"pages", "exports", "verify"},
        help="comma-separated: pages, exports, verify (default: all)",
    )
    parser.add_argument("--fresh", action="store_true", help="Drop the bench database first.")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sizes:
        scaling(args)
        return
    _environment()
    if args.fresh:
        _drop_database()
    benchlib.django_setup()
    done = measure(args)
    if args.result:
        import json

        Path(args.result).write_text(json.dumps(done))


if __name__ == "__main__":
    main()
