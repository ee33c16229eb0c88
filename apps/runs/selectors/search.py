"""Search in a run's log: every match of a text, in what a reader sees (colours and other
terminal sequences removed), case-insensitive, over the whole log.

The events that may hold a match are found through an index the database offers, not by
reading the log: on PostgreSQL a trigram index (pg_trgm) on the upper-cased output, which
`icontains` reads; on SQLite a full-text table with the trigram tokenizer (FTS5), kept by
a trigger as events are inserted (migration runs 0008). Then each such event's lines are
read as the page shows them, and counted.

A first page of matches stops at its last line: the events are read in their order, in
LIMITed queries (on SQLite, the first ones a window at a time through the run's counter
index, as the full-text table would give a frequent text's every match before the first),
so it costs the same whatever the log's size. Counting every match (which reads every
event that holds one) is asked for apart (`count=True`), once the first matches are shown.
"""

import heapq
import re
from collections.abc import Iterator
from dataclasses import dataclass

from django.db import connection

from apps.runs.ansi import CONTROL_SYMBOLS, VISIBLE, plain_lines
from apps.runs.models import Run, RunEvent

SEARCH_HITS = 10_000
READ_EVENTS = 2000  # events read from the database at a time (a first page: at first)
# SQLite, a first page: the events read in order before the full-text table takes over
# (a window at a time; ~70 ms in all on a 2-core machine).
WALK_EVENTS = 20_000
WALK_WINDOW = 5000
READ_WINDOW = 500  # rows fetched at a time from a window: a full page stops reading it
# SQLite's full-text table of the events' output (trigram tokenizer, case-insensitive).
FTS_TABLE = "runs_runevent_text"
FTS_TRIGGER = "runs_runevent_text_insert"
FTS_EVENTS = (
    "SELECT e.counter, e.stdout, e.start_line, e.end_line FROM runs_runevent_text "
    "CROSS JOIN runs_runevent e ON e.id = runs_runevent_text.rowid "
    "WHERE runs_runevent_text MATCH %s AND e.run_id = %s AND e.end_line <= %s "
    "AND e.counter > %s ORDER BY e.counter"
)
FIELDS = ("counter", "stdout", "start_line", "end_line")


@dataclass(frozen=True)
class LogSearch:
    hits: list[tuple[int, int]]  # (line number, matches on it), in order; at most `limit`
    # Matches in the whole log searched, also beyond `limit`; None when not counted (more
    # lines match than `hits` lists, and the search stopped there).
    total: int | None
    upto: int  # the last line searched: lines after it came later, the page counts them


def _ascii_part(query: str) -> str:
    """The longest run of ASCII characters in `query`: every database folds their case
    as Python does, not always that of other letters (PostgreSQL's UPPER follows its
    locale; SQLite's LIKE folds ASCII only)."""
    return max(re.split(r"[^\x00-\x7f]+", query), key=len)


def _fts_kept() -> bool:
    """Whether the trigger that keeps the full-text table is there: SQLite drops a
    table's triggers when a migration remakes it, and a table left behind would miss
    rows. Without it, a search reads the log."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = %s", [FTS_TRIGGER]
        )
        return cursor.fetchone() is not None


def _chunks(events, first_page: bool) -> Iterator[tuple]:
    """The rows of `events` (ordered by counter). For a first page, in LIMITed queries of
    READ_EVENTS each, after the last counter read: the database stops at each one's end,
    and a reader that has enough stops asking. Else in one query.

    The LIMIT stays small: PostgreSQL weighs reading the run's events in order until it
    has that many matches against finding every match and sorting them, and with a LIMIT
    near the matches it expects (a term in every event, taken for one in three) it
    chose the sort: 180 ms, most of a 200,000-line log's first page, for 8 ms of work."""
    if not first_page:
        yield from events.values_list(*FIELDS).iterator(READ_EVENTS)
        return
    last = -1
    while True:
        rows = list(events.filter(counter__gt=last).values_list(*FIELDS)[:READ_EVENTS])
        yield from rows
        if len(rows) < READ_EVENTS:
            return
        last = rows[-1][0]


def _holding(run: Run, query: str, upto: int, first_page: bool) -> Iterator[tuple]:
    """The events whose stored output may hold `query` (whatever the case), in order,
    found by the database's index: those holding its longest ASCII part."""
    events = RunEvent.objects.filter(run=run, end_line__lte=upto).order_by("counter")
    part = _ascii_part(query)
    if part:
        events = events.filter(stdout__icontains=part)
    if connection.vendor == "sqlite" and len(part) >= 3 and _fts_kept():
        last = Run.objects.filter(pk=run.pk).values_list("event_count", flat=True).first()
        if last and last <= WALK_EVENTS:
            # No more events than a first page walks: read in order, its count too. The
            # full-text table would give every other run's matches of the text, to be
            # left out one by one (a term in every event: 0.04 s alone, 0.28 s beside
            # 1,250,000 lines of other runs). (A run stored before its last counter was
            # kept says 0: its length is unknown.)
            yield from _chunks(events, first_page)
            return
        phrase = '"' + part.replace('"', '""') + '"'
        after = -1
        if first_page:
            # The full-text table gives its matches in no useful order: SQLite reads
            # them all, then sorts them. A frequent text fills a first page from the
            # first events of the log, read in order (through the run's counter index)
            # a window at a time; the text index takes over for a rarer one.
            while after < min(last or 0, WALK_EVENTS):
                window = events.filter(counter__gt=after, counter__lte=after + WALK_WINDOW)
                yield from window.values_list(*FIELDS).iterator(READ_WINDOW)
                after += WALK_WINDOW
        yield from _fts_events(run, phrase, upto, after)
        return
    yield from _chunks(events, first_page)


def _fts_events(run: Run, phrase: str, upto: int, after: int) -> Iterator[tuple]:
    """SQLite: the events after counter `after` that the full-text table finds, read
    from it first (CROSS JOIN keeps that order): a rare text costs a few lookups, not a
    walk over the run's events."""
    with connection.cursor() as cursor:
        cursor.execute(FTS_EVENTS, [phrase, run.pk, upto, after])
        while rows := cursor.fetchmany(READ_EVENTS):
            yield from rows


def _candidates(run: Run, query: str, upto: int, first_page: bool) -> Iterator[tuple]:
    """The events that may hold a match, in order: those whose stored output holds the
    query, and those holding a terminal string (a hyperlink, a title) that may split it,
    as the reader searches the text without them. A query with a symbol shown for a
    control character (␍, �) can only be found in the text shown: every event is read."""
    events = RunEvent.objects.filter(run=run, end_line__lte=upto).order_by("counter")
    if CONTROL_SYMBOLS.intersection(query):
        yield from _chunks(events, first_page)
        return
    holding = _holding(run, query, upto, first_page)
    # Through its partial index (the few events it holds), not the run's end_line index:
    # the lines searched are kept here.
    split = [
        event
        for event in RunEvent.objects.filter(run=run, terminal_string=True)
        .order_by("counter")
        .values_list(*FIELDS)
        if event[3] <= upto
    ]
    last = None
    for event in heapq.merge(holding, split):
        if event[0] != last:
            last = event[0]
            yield event


def run_log_search(
    *, run: Run, query: str, limit: int = SEARCH_HITS, count: bool = True, upto: int | None = None
) -> LogSearch:
    """The matches of `query` (case-insensitive, in the text a reader sees: plain_text)
    in the whole log, not only the lines a page holds: the first `limit` lines with one,
    and every match counted. With `count=False`, the search stops once a line beyond the
    first `limit` has a match (total None then): its cost is that of the first page,
    whatever the log's size. `upto` searches the lines up to it only (those a first page
    searched, when their count is asked for after it)."""
    needle = query.lower()
    # A needle without control characters never spans two lines: an event's matches
    # are counted in its text at once.
    at_once = needle == needle.translate(VISIBLE)
    # Events are stored with the run's line_count in one transaction: every event
    # ending up to it is there.
    stored = Run.objects.filter(pk=run.pk).values_list("line_count", flat=True).first() or 0
    upto = stored if upto is None else min(upto, stored)
    hits: list[tuple[int, int]] = []
    total = 0
    for _counter, stdout, start, end in _candidates(run, query, upto, first_page=not count):
        lines = plain_lines(stdout, end - start)
        if at_once:
            text = "\n".join(lines).lower()
            if needle not in text:
                continue
            if len(hits) >= limit:
                if not count:
                    return LogSearch(hits=hits, total=None, upto=upto)
                total += text.count(needle)
                continue
        for offset, line in enumerate(lines):
            found = line.lower().count(needle)
            if found:
                if len(hits) >= limit and not count:
                    return LogSearch(hits=hits, total=None, upto=upto)
                total += found
                if len(hits) < limit:
                    hits.append((start + offset + 1, found))
    return LogSearch(hits=hits, total=total, upto=upto)
