"""The audit log's free-text search through the database's index (PostgreSQL: pg_trgm
over the text with punctuation read as letters, migration 0009; SQLite: an FTS5 table
kept by a trigger, migration 0007): the rows a full read finds, newest first, a new row
found at once; the chain still verifies."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

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
