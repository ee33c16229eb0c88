"""Reading the audit log: filters, keyset pages, single rows, what exports stream."""

import re
import string
from collections.abc import Iterator
from dataclasses import dataclass

from django.db import connection
from django.db.models import BooleanField, F, Func, QuerySet, TextField, Value
from django.db.models.functions import Cast

from apps.audit.chain import FIELDS
from apps.audit.models import AuditCheckpoint, AuditEvent, AuditVerification

PAGE_SIZE = 50


def audit_event_filter(*, filters: dict) -> QuerySet[AuditEvent]:
    """Rows matching `filters` (AuditFilterForm.filters()), newest first."""
    events = AuditEvent.objects.all()
    exact = {
        "actor": "actor_name",
        "service": "service",
        "environment": "environment",
        "object_type": "object_type",
        "object_id": "object_id",
        "outcome": "outcome",
        "via": "via",
    }
    for name, column in exact.items():
        if filters.get(name):
            events = events.filter(**{column: filters[name]})
    if verb := filters.get("verb"):
        if verb.endswith(".*"):
            events = events.filter(verb__startswith=verb[:-1])
        else:
            events = events.filter(verb=verb)
    if filters.get("since"):
        events = events.filter(created_at__gte=filters["since"])
    if filters.get("until"):
        events = events.filter(created_at__lt=filters["until"])
    if text := filters.get("q"):
        events = events.filter(TextMatch(text))
    return events.order_by("-id")


# The text free-text search looks in; on PostgreSQL a trigram index covers this very
# expression with its punctuation read as letters (migrations 0008 and 0009, see
# TextMatch), so a search does not read the whole log.
SEARCH_TEXT = (
    "(actor_name || ' ' || verb || ' ' || object_type || ' ' || object_id || ' ' || "
    "object_repr || ' ' || service || ' ' || environment || ' ' || details)"
)


# SQLite: the full-text table (FTS5, trigrams) of that text, and the trigger that keeps
# it (migration 0007); without the trigger (a migration that remade the table drops
# it) the search reads every row.
FTS_TRIGGER = "audit_auditevent_text_insert"
FTS_MATCH = "id IN (SELECT rowid FROM audit_auditevent_text WHERE audit_auditevent_text MATCH %s)"


# The characters the words index reads as a letter, each replaced by "q" in its turn,
# then lower-cased (migration 0009's expression: `replace()` 32 times costs a fifth of one
# `translate()`, and `LIKE` of lower-cased words plans quicker than `ILIKE`).
WORD_PUNCTUATION = string.punctuation
_AS_LETTERS = str.maketrans(WORD_PUNCTUATION, "q" * len(WORD_PUNCTUATION))
WORDS_TEXT = SEARCH_TEXT
for _ in WORD_PUNCTUATION:
    WORDS_TEXT = f"replace({WORDS_TEXT}, %s, 'q')"  # each character a parameter
WORDS_TEXT = f"lower({WORDS_TEXT})"


class TextMatch(Func):
    """The row's text contains `text`, whatever the case (ASCII only on SQLite)."""

    output_field = BooleanField()

    def __init__(self, text: str):
        self.text = text
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        super().__init__(Value(f"%{escaped}%"))

    def as_postgresql(self, compiler, connection, **extra):
        sql, params = self.as_sql(
            compiler, connection, template=f"{SEARCH_TEXT} ILIKE %(expressions)s", **extra
        )
        # The words index first (punctuation read as letters, so "1.7.4" has trigrams of
        # its own), then the text itself decides, as it did without.
        words = f"%{self.text.translate(_AS_LETTERS)}%"  # no wildcard or escape is left
        # COALESCE keeps PostgreSQL from multiplying the two tests' selectivities (the
        # second holds wherever the first does, nearly): it counts it as one in two.
        # `lower(%s)`: the pattern lower-cased as the words are (PostgreSQL folds it
        # before planning).
        return (
            f"({WORDS_TEXT} LIKE lower(%s) AND COALESCE({sql}, false))",
            (*WORD_PUNCTUATION, words, *params),
        )

    def as_sqlite(self, compiler, connection, **extra):
        sql, params = self.as_sql(
            compiler,
            connection,
            template=f"{SEARCH_TEXT} LIKE %(expressions)s ESCAPE '\\'",
            **extra,
        )
        if len(self.text) < 3 or not _fts_kept(connection):
            return sql, params
        # Its trigrams narrow the rows read; LIKE still decides, as it did without.
        phrase = '"' + self.text.replace('"', '""') + '"'
        return f"({FTS_MATCH} AND {sql})", (phrase, *params)


def _fts_kept(connection) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = %s", [FTS_TRIGGER]
        )
        return cursor.fetchone() is not None


@dataclass(frozen=True)
class AuditPage:
    events: list[AuditEvent]
    newer: int | None  # show newer rows with ?after=<newer>
    older: int | None  # show older rows with ?before=<older>


def audit_event_page(
    *, filters: dict, before: int | None = None, after: int | None = None, size: int = PAGE_SIZE
) -> AuditPage:
    """One page of matching rows, newest first, found by keyset (sequence numbers), not
    by offset: any page costs what the first does."""
    events = audit_event_filter(filters=filters)
    by_windows = _words_narrow(filters.get("q"))
    if after is not None:
        # Newer rows: the `size` just above `after`, walked upwards, shown newest first.
        if by_windows:
            rows = _in_windows(events, after=after, limit=size + 1)
        else:
            rows = list(events.filter(id__gt=after).order_by("id")[: size + 1])
        more_newer = len(rows) > size
        rows = rows[:size][::-1]
        return AuditPage(
            rows,
            newer=rows[0].id if rows and more_newer else None,
            older=rows[-1].id if rows else after + 1,
        )
    if by_windows:
        rows = _in_windows(events, before=before, limit=size + 1)
    else:
        rows = list((events if before is None else events.filter(id__lt=before))[: size + 1])
    more_older = len(rows) > size
    rows = rows[:size]
    return AuditPage(
        rows,
        newer=rows[0].id if rows and before is not None else (before - 1 if before else None),
        older=rows[-1].id if rows and more_older else None,
    )


# A text search on PostgreSQL reads the log by windows of sequence numbers from its
# cursor on, nearest first, until it has a page: TEXT_WINDOW rows, then TEXT_WINDOW_GROWTH
# times as many past them, and so on. The words index offers every row of the whole log
# that may match, and each is read and checked; within a window, only those of the
# window are (PostgreSQL ANDs the index's rows with the window's, read from the primary
# key): a version offered on some 8,000 rows of 10,000,000 is checked on some hundred.
#
# The first window may be read along the primary key, nearest first, stopping at a
# page, where PostgreSQL expects matches close by (a frequent term: a page is in the
# newest rows): at worst, a window of rows checked. The next windows are asked in an
# order no index gives, so PostgreSQL reads what the words index offers in them (or the
# window, if it expects that to cost less): its estimate of the matches is a guess (the
# words of "user_42" match every "user-42"), and reading millions of rows one by one
# for a page that is not there must not follow from it.
#
# Each window reads the words index again; for some words (those of "Run #12345" are
# in most rows) that costs 0.1 s at 10,000,000 rows, so the windows are few: two there
# (a window 100 times as wide as the last, rather than 10: 0.23 s instead of 0.34 for
# "Run #12345", and as quick for a version, a commit or a name).
TEXT_WINDOW, TEXT_WINDOW_GROWTH = 100_000, 100


# The words index of migration 0009; PostgreSQL leaves one that a concurrent build did
# not finish in place, invalid, and reads the log without it.
WORDS_INDEX = "audit_text_words_replace_trgm"


def _words_narrow(text: str | None) -> bool:
    """Whether a search for `text` is read by windows: on PostgreSQL, where the words
    index can narrow it (the words hold a trigram, three letters or digits in a row, and
    the index is there). Else no window can be read from the index, and the search is one
    walk of the log, newest first, stopping at a page, as any other filter's."""
    if not text or connection.vendor != "postgresql":
        return False
    if not re.search(r"[^\W_]{3}", text.translate(_AS_LETTERS)):
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = %s AND i.indisvalid",
            [WORDS_INDEX],
        )
        return cursor.fetchone() is not None


def _ordered(first: bool, *, descending: bool):
    if first:
        return "-id" if descending else "id"
    unindexed = F("id") + 0
    return unindexed.desc() if descending else unindexed.asc()


def _in_windows(events, *, limit: int, before=None, after=None) -> list[AuditEvent]:
    """Up to `limit` rows of `events` past a cursor, nearest first: newest first below
    `before` (or from the head), oldest first above `after`."""
    head = audit_head_sequence()
    rows, width = [], TEXT_WINDOW
    if after is not None:
        low = after
        while len(rows) < limit:
            window = events.filter(id__gt=low)
            window = window.order_by(_ordered(width == TEXT_WINDOW, descending=False))
            last = low + width >= head  # the last window is open: rows written since count
            if not last:
                window = window.filter(id__lte=low + width)
            rows += window[: limit - len(rows)]
            if last:
                break
            low, width = low + width, width * TEXT_WINDOW_GROWTH
        return rows
    high = before  # None: the first page, open above (rows written since count)
    while len(rows) < limit:
        # From the head at most: a cursor past it starts where the rows are.
        top = head + 1 if high is None else min(high, head + 1)
        window = events if high is None else events.filter(id__lt=high)
        window = window.order_by(_ordered(width == TEXT_WINDOW, descending=True))
        last = top - width <= 1
        if not last:
            window = window.filter(id__gte=top - width)
        rows += window[: limit - len(rows)]
        if last:
            break
        high, width = top - width, width * TEXT_WINDOW_GROWTH
    return rows


def audit_event_get(*, event_id: int) -> AuditEvent | None:
    return AuditEvent.objects.filter(pk=event_id).first()


def audit_event_neighbours(*, event: AuditEvent) -> tuple[AuditEvent | None, AuditEvent | None]:
    """The rows just before and after `event` in the chain."""
    return (
        AuditEvent.objects.filter(id__lt=event.id).order_by("-id").first(),
        AuditEvent.objects.filter(id__gt=event.id).order_by("id").first(),
    )


def audit_head_sequence() -> int:
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


EXPORT_COLUMNS = (*FIELDS, "hash")


class CanonicalTime(Func):
    """A datetime column as chain.canonical_time writes it, formatted by the database
    (an export formats a million of them)."""

    output_field = TextField()

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(
            compiler,
            connection,
            template="to_char(%(expressions)s AT TIME ZONE 'UTC', "
            '\'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\')',
            **extra,
        )

    def as_sqlite(self, compiler, connection, **extra):
        # Django keeps naive UTC text there, without the fraction when it is zero.
        return self.as_sql(
            compiler,
            connection,
            template="replace(CASE WHEN instr(%(expressions)s, '.') = 0 "
            "THEN %(expressions)s || '.000000' ELSE %(expressions)s END, ' ', 'T') || 'Z'",
            **extra,
        )


def audit_export_rows(
    *, filters: dict, up_to: int, oldest_first: bool = False, chunk_size: int = 5000
) -> Iterator[tuple]:
    """Matching rows up to sequence `up_to`, streamed in chunks (memory stays flat).

    Tuples in EXPORT_COLUMNS order, canonical (created_at as text, details as its
    JSON text) except `ip`.
    """
    events = audit_event_filter(filters=filters).filter(id__lte=up_to)
    if oldest_first:
        events = events.order_by("id")
    renamed = {"created_at": "created_text", "details": "details_text"}
    columns = [renamed.get(name, name) for name in EXPORT_COLUMNS]
    return (
        events.annotate(
            created_text=CanonicalTime("created_at"),
            details_text=Cast("details", TextField()),
        )
        .values_list(*columns)
        .iterator(chunk_size=chunk_size)
    )


def audit_scope_choices() -> tuple[list[str], list[str]]:
    """The services and environments the log names (slugs), for the filters' choices."""
    return sorted(_distinct("service")), sorted(_distinct("environment"))


# Each value the next after the one before it, from the column's index: one index probe
# per value, where SELECT DISTINCT read the whole log (0.4 s a column at 1,000,000 rows,
# on every review page). Column names are this module's own, never a user's.
_DISTINCT = """
WITH RECURSIVE found(value) AS (
    SELECT (SELECT {column} FROM {table} WHERE {column} > '' ORDER BY {column} LIMIT 1)
    UNION ALL
    SELECT (SELECT {column} FROM {table} WHERE {column} > found.value ORDER BY {column} LIMIT 1)
    FROM found WHERE found.value IS NOT NULL
)
SELECT value FROM found WHERE value IS NOT NULL
"""


def _distinct(column: str) -> list[str]:
    """The non-empty values of an indexed text column of the log."""
    table = AuditEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(_DISTINCT.format(column=column, table=table))
        return [value for (value,) in cursor.fetchall()]


def audit_verification_latest() -> AuditVerification | None:
    return AuditVerification.objects.order_by("-id").first()


def audit_checkpoint_latest() -> AuditCheckpoint | None:
    return AuditCheckpoint.objects.order_by("-id").first()
