"""Search in a run's log through the database's index (PostgreSQL: pg_trgm; SQLite: FTS5):
the same matches as reading every line, kept in step with each stored batch."""

import random
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.runs import selectors
from apps.runs.ansi import event_lines, plain_text
from apps.runs.events import events_store
from apps.runs.models import RunEvent
from apps.runs.selectors import search
from tests.factories import RunFactory
from tests.runs.helpers import GREEN, RESET, Log

WORDS = ["Deploy", "deploy", "DEPLOY", "release-12", "ok:", "[web1]", "Écoute", "écoute", "x"]
DECOR = [GREEN, RESET, "\x1b]8;;https://example.com\x1b\\", "\x1b]8;;\x1b\\", "\t", "\r", "\x01"]
QUERIES = ["deploy", "Deploy", "PLOY", "release-1", "ok: [web1]", "écoute", "x", "é", "␁", "\t"]


@pytest.fixture
def run(db):
    return RunFactory()


def _stdout(rng: random.Random) -> str:
    lines = []
    for _ in range(rng.randrange(1, 4)):
        parts = [rng.choice(WORDS + DECOR) for _ in range(rng.randrange(1, 7))]
        lines.append(" ".join(parts))
    return "\r\n".join(lines)


def _every_line(run, query: str) -> list[tuple[int, int]]:
    """The matches as read from every line of the log, without any index."""
    hits = []
    for event in RunEvent.objects.filter(run=run).order_by("counter"):
        for offset, text in enumerate(event_lines(event.stdout, event.end_line - event.start_line)):
            if count := plain_text(text).lower().count(query.lower()):
                hits.append((event.start_line + offset + 1, count))
    return hits


def test_search_finds_what_reading_every_line_finds(run, monkeypatch):
    # Events are read in chunks and windows: small ones here, so that many are read.
    monkeypatch.setattr(search, "READ_EVENTS", 7)
    monkeypatch.setattr(search, "WALK_WINDOW", 5)
    monkeypatch.setattr(search, "WALK_EVENTS", 40)
    rng = random.Random(19)
    log = Log(run)
    for _ in range(300):
        log.add("runner_on_ok", _stdout(rng))

    for query in QUERIES:
        found = selectors.run_log_search(run=run, query=query)
        expected = _every_line(run, query)
        assert found.hits == expected, query
        assert found.total == sum(count for _, count in expected), query
        for limit in (3, 60):
            first = selectors.run_log_search(run=run, query=query, limit=limit, count=False)
            assert first.hits == expected[:limit], (query, limit)


def test_search_counts_every_match_beyond_the_lines_it_lists(run):
    Log(run).lines(500, text=f"{GREEN}Deploy release-{{n}}: deploy, DEPLOY{RESET}")

    found = selectors.run_log_search(run=run, query="deploy", limit=10)

    assert found.hits == [(n, 3) for n in range(1, 11)]
    assert found.total == 1500


def test_the_first_page_stops_at_its_last_line_and_the_count_comes_apart(run):
    Log(run).lines(500, text=f"{GREEN}Deploy release-{{n}}: deploy, DEPLOY{RESET}")

    first = selectors.run_log_search(run=run, query="deploy", limit=10, count=False)
    counted = selectors.run_log_search(run=run, query="deploy", limit=0, upto=first.upto)

    assert first.hits == [(n, 3) for n in range(1, 11)]
    assert first.total is None
    assert (counted.hits, counted.total, counted.upto) == ([], 1500, 500)
    # A search with every match on its first page knows their count at once.
    few = selectors.run_log_search(run=run, query="release-12:", limit=10, count=False)
    assert (few.hits, few.total) == ([(12, 1)], 1)
    # Up to a line: the count the first page's lines hold.
    assert selectors.run_log_search(run=run, query="deploy", limit=0, upto=100).total == 300


def test_a_stored_batch_is_found_at_once(run):
    Log(run).lines(100)
    assert selectors.run_log_search(run=run, query="needle-in-haystack").total == 0

    events_store(
        run.pk,
        [
            RunEvent(
                run=run, counter=10_000, event="runner_on_ok", start_line=100, end_line=101,
                stdout=f"{GREEN}the Needle-In-Haystack{RESET}",
            )
        ],
    )  # fmt: skip
    run.refresh_from_db()

    found = selectors.run_log_search(run=run, query="needle-in-haystack")
    assert (found.hits, found.upto) == ([(101, 1)], 101)


def test_the_events_of_another_run_are_not_searched(run):
    Log(run).lines(10, text="mine {n}")
    other = RunFactory()
    Log(other).lines(10, text="mine too {n}")

    assert selectors.run_log_search(run=run, query="mine").total == 10


def test_search_reads_the_database_index_not_the_log(run, monkeypatch):
    # On SQLite a run of fewer events than the first page walks is read in order whole.
    monkeypatch.setattr("apps.runs.selectors.search.WALK_EVENTS", 100)
    Log(run).lines(2000, text="line {n}")
    with CaptureQueriesContext(connection) as queries:
        found = selectors.run_log_search(run=run, query="line 1234")
    search = next(
        q["sql"] for q in queries.captured_queries if "LIKE" in q["sql"] or "MATCH" in q["sql"]
    )

    assert found.hits == [(1234, 1)]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The condition the index must serve, alone: on a big log the planner takes
            # it (a tiny one it reads whole, or the run's few rows in their order).
            like = re.search(
                r"UPPER\(\"runs_runevent\"\.\"stdout\"::text\) LIKE UPPER\('[^']*'\)", search
            )
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"EXPLAIN SELECT id FROM runs_runevent WHERE {like.group()}")  # noqa: S608
            assert "runs_runevent_stdout_trgm" in str(cursor.fetchall())
        else:
            assert "runs_runevent_text" in search
            cursor.execute(f"EXPLAIN QUERY PLAN {search}")
            assert "runs_runevent_text VIRTUAL TABLE" in str(cursor.fetchall())


@pytest.mark.skipif("connection.vendor != 'sqlite'")
def test_without_the_trigger_that_keeps_its_index_search_reads_the_log(run):
    log = Log(run)
    log.lines(10, text="line {n}")
    with connection.cursor() as cursor:
        # As a migration that remakes the table leaves it.
        cursor.execute("DROP TRIGGER runs_runevent_text_insert")
    log.lines(10, text="later {n}")

    assert selectors.run_log_search(run=run, query="later").hits == [(n, 1) for n in range(11, 21)]


@pytest.mark.skipif("connection.vendor != 'sqlite'")
def test_a_short_run_is_searched_in_its_own_events_only(run):
    # Another run holds the text in every event: the full-text table would give them all.
    Log(RunFactory()).lines(300, text="changed {n}")
    Log(run).lines(30, text="changed {n}")

    with CaptureQueriesContext(connection) as queries:
        first = selectors.run_log_search(run=run, query="changed", count=False)
        counted = selectors.run_log_search(run=run, query="changed")

    assert first.hits == counted.hits == [(n, 1) for n in range(1, 31)]
    assert counted.total == 30
    assert not [q for q in queries.captured_queries if "MATCH" in q["sql"]]
