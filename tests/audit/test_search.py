"""The audit log's free-text search through the database's index (PostgreSQL: pg_trgm
over the text with punctuation read as letters, migration 0009, read by windows of
sequence numbers; SQLite: an FTS5 table kept by a trigger, migration 0007): the rows a
full read finds, newest first, page after page both ways, a new row found at once; the
chain still verifies."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.audit import selectors
from apps.audit.models import AuditEvent
from apps.audit.selectors import SEARCH_TEXT, audit_event_filter, audit_event_page
from apps.audit.verification import audit_verify
from tests.audit.conftest import record

QUERIES = [
    "release-1.7", "RELEASE-1.7.4", "shop", "Production", "no grant", "1.7.4", "x", "%",
    # The words index reads punctuation as "q": what only that reading matches is not found.
    "1q7", "releaseq1", "Q", "_", "\\", '"reason": "No',
]  # fmt: skip


@pytest.fixture
def rows(db):
    made = []
    for n in range(60):
        made.append(
            record(
                "run.requested" if n % 3 else "run.refused",
                service="shop" if n % 2 else "blog",
                environment="production" if n % 5 == 0 else "test",
                object_repr=f"Run #{n} Deploy release-1.{n % 9}.{n}",
                details={"reason": "No grant on production."} if n % 7 == 0 else {"n": n},
            )
        )
    return made


def _read_every_row(query: str) -> list[int]:
    """The rows whose text holds `query` (ASCII case folded, as on both databases), read
    one by one, newest first."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, {SEARCH_TEXT} FROM audit_auditevent ORDER BY id DESC")  # noqa: S608
        return [pk for pk, text in cursor.fetchall() if query.lower() in text.lower()]


def test_search_finds_what_reading_every_row_finds(rows):
    for query in QUERIES:
        found = list(audit_event_filter(filters={"q": query}).values_list("id", flat=True))
        assert found == _read_every_row(query), query


@pytest.mark.parametrize("window", [3, 50])
def test_pages_of_a_search_hold_every_match_once_in_order_both_ways(rows, monkeypatch, window):
    """Small windows (PostgreSQL reads a search window by window, growing; on SQLite the
    search is one walk and the windows are not used): pages cross them, some windows hold
    no match, and the last is open."""
    monkeypatch.setattr(selectors, "TEXT_WINDOW", window)
    monkeypatch.setattr(selectors, "TEXT_WINDOW_GROWTH", 2)
    for query in ("shop", "no grant", "release-1.7", "1.7.4", "nothing like it"):
        expected = _read_every_row(query)

        older, page = [], audit_event_page(filters={"q": query}, size=4)
        while True:
            older += [row.id for row in page.events]
            if page.older is None:
                break
            page = audit_event_page(filters={"q": query}, before=page.older, size=4)
        assert older == expected, query

        newer, page = [], audit_event_page(filters={"q": query}, after=0, size=4)
        while True:
            newer = [row.id for row in page.events] + newer
            if page.newer is None:
                break
            page = audit_event_page(filters={"q": query}, after=page.newer, size=4)
        assert newer == expected, query


@pytest.mark.parametrize("window", [3, 100_000])
def test_a_cursor_past_the_head_pages_from_the_newest_row(rows, monkeypatch, window):
    monkeypatch.setattr(selectors, "TEXT_WINDOW", window)
    expected = _read_every_row("shop")
    head = AuditEvent.objects.order_by("-id").first().id

    with CaptureQueriesContext(connection) as first:
        audit_event_page(filters={"q": "shop"}, size=4)
    for before in (head + 1, head + 10**6, 2**63 - 1):
        with CaptureQueriesContext(connection) as queries:
            page = audit_event_page(filters={"q": "shop"}, before=before, size=4)
        assert [row.id for row in page.events] == expected[:4], before
        # As many windows as from the head: none is spent on the ids past it.
        assert len(queries.captured_queries) == len(first.captured_queries), before
    for after in (head, head + 10**6):
        assert audit_event_page(filters={"q": "shop"}, after=after, size=4).events == []


def test_a_new_row_is_found_at_once_and_the_chain_still_verifies(rows):
    assert not audit_event_page(filters={"q": "zebra-crossing"}).events

    row = record("action.update", object_repr="The Zebra-Crossing action")

    assert audit_event_page(filters={"q": "zebra-crossing"}).events == [row]
    report = audit_verify(checkpoints=[], notes=[])
    assert report.ok, report.problems
    assert report.rows_checked == AuditEvent.objects.count()


@pytest.mark.skipif("connection.vendor != 'sqlite'")
def test_on_sqlite_it_reads_the_full_text_table(rows):
    with CaptureQueriesContext(connection) as queries:
        list(audit_event_filter(filters={"q": "release-1.7"}))
    search = queries.captured_queries[-1]["sql"]

    assert "audit_auditevent_text" in search
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {search}")
        assert "audit_auditevent_text VIRTUAL TABLE" in str(cursor.fetchall())


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_on_postgresql_a_version_is_looked_up_in_the_words_index(rows):
    """The search's expression is the index's very expression (else PostgreSQL reads the
    log backwards, row by row, until it has a page)."""
    with CaptureQueriesContext(connection) as queries:
        list(audit_event_filter(filters={"q": "1.7.4"}))
    search = queries.captured_queries[-1]["sql"]

    with connection.cursor() as cursor:
        # 60 rows: left to itself the planner reads them all; only the index may answer.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute(f"EXPLAIN {search}")
        plan = "\n".join(line for (line,) in cursor.fetchall())
    assert "Bitmap Index Scan on audit_text_words_replace_trgm" in plan


@pytest.mark.skipif("connection.vendor != 'postgresql'")
@pytest.mark.parametrize("query", ["ab", "a b c", "z", "é"])
def test_words_the_index_cannot_narrow_are_one_walk_of_the_log(rows, monkeypatch, query):
    """No trigram in the words: no window could be read from the index, and a window read
    in an order no index gives would be read whole."""
    monkeypatch.setattr(selectors, "TEXT_WINDOW", 3)
    with CaptureQueriesContext(connection) as queries:
        found = audit_event_page(filters={"q": query}, size=100).events
    assert [row.id for row in found] == _read_every_row(query)
    assert not any("+ 0" in q["sql"] for q in queries.captured_queries)


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_on_postgresql_without_a_valid_words_index_a_search_is_one_walk(rows, monkeypatch):
    """A concurrent build cut short leaves the index invalid: PostgreSQL does not read it."""
    monkeypatch.setattr(selectors, "TEXT_WINDOW", 3)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass",
            [selectors.WORDS_INDEX],
        )
    with CaptureQueriesContext(connection) as queries:
        found = audit_event_page(filters={"q": "shop"}, size=100).events
    assert [row.id for row in found] == _read_every_row("shop")
    assert not any("+ 0" in q["sql"] for q in queries.captured_queries)


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_on_postgresql_only_the_first_window_may_walk_the_primary_key(rows, monkeypatch):
    """A wider window walked newest first along the primary key could check millions of
    rows for a page that is not there; PostgreSQL must be left no such plan."""
    monkeypatch.setattr(selectors, "TEXT_WINDOW", 3)
    monkeypatch.setattr(selectors, "TEXT_WINDOW_GROWTH", 2)
    with CaptureQueriesContext(connection) as queries:
        audit_event_page(filters={"q": "nothing like it"})
    windows = [q["sql"] for q in queries.captured_queries if "LIKE" in q["sql"]]
    assert len(windows) > 2

    plans = []
    with connection.cursor() as cursor:
        # What is left when PostgreSQL may only walk an index, not read the table.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        for sql in windows:
            cursor.execute(f"EXPLAIN {sql}")
            plans.append("\n".join(line for (line,) in cursor.fetchall()))
    assert "Index Scan Backward using audit_auditevent_pkey" in plans[0]
    for plan in plans[1:]:
        assert "Index Scan Backward" not in plan, plan
        assert "Sort" in plan, plan
