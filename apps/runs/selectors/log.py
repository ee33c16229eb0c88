"""A run's log as the pages read it: lines with their numbers and times, the tail,
windows, the download, progress and a dry run's diffs."""

import operator
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain, islice, repeat

import psycopg
from django.db import connection
from django.db.models import Func, TextField
from django.utils import timezone

from apps.runs.ansi import (
    ansi_to_html,
    event_lines,
    plain_lines_of,
    plain_text,
    split_lines,
)
from apps.runs.models import Run, RunEvent
from apps.runs.progress import progress_count

TAIL_LINES = 1000
CHUNK_LINES = 2000
# The events whose header line opens a collapsible section of the log.
SECTION_EVENTS = {
    "playbook_on_play_start": "play",
    "playbook_on_task_start": "task",
    "playbook_on_handler_task_start": "task",
    "playbook_on_stats": "recap",
}


@dataclass(frozen=True)
class LogLine:
    number: int
    html: str
    created: datetime | None
    failed: bool
    stamp: str = ""  # ISO 8601, in the active time zone, as the download has it
    clock: str = ""  # its time of day, as the page shows it
    section: str = ""  # "play", "task" or "recap" on the header line of a section


def _clock(created: datetime | None) -> tuple[str, str]:
    """An event's time as shown on each of its lines (and in the download): the full ISO
    timestamp, in the active time zone, and its time of day."""
    if created is None:
        return "", ""
    local = timezone.localtime(created)
    stamp = local.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return stamp, local.strftime("%H:%M:%S")


def _event_lines(event: RunEvent) -> list[str]:
    return event_lines(event.stdout, event.end_line - event.start_line)


def _lines(events) -> list[LogLine]:
    lines = []
    for event in events:
        stamp, clock = _clock(event.created)
        section = SECTION_EVENTS.get(event.event, "")
        for offset, text in enumerate(_event_lines(event)):
            lines.append(
                LogLine(
                    event.start_line + offset + 1,
                    ansi_to_html(text),
                    event.created,
                    event.failed,
                    stamp,
                    clock,
                    # The section header is the first line with text (Ansible prints a
                    # blank line before "TASK [...]").
                    section if section and text.strip() else "",
                )
            )
            if text.strip():
                section = ""
    return lines


LINE_FIELDS = ("counter", "event", "stdout", "start_line", "end_line", "created", "failed")


def _events_covering(run: Run, first: int, last: int) -> list[RunEvent]:
    """The events that printed any of the lines `first`..`last`, in order. Two index
    range reads on (run, end_line): the events ending inside the range, and the one
    event that ends after it (it may have started inside)."""
    inside = list(
        RunEvent.objects.filter(run=run, end_line__gte=first, end_line__lte=last)
        .only(*LINE_FIELDS)
        .order_by("counter")
    )
    # In two steps, each one index lookup: filtered on start_line, or ordered on it too,
    # the database would read on to the log's end.
    ends = RunEvent.objects.filter(run=run, end_line__gt=last).order_by("end_line")
    end = ends.values_list("end_line", flat=True).first()
    after = (
        RunEvent.objects.filter(run=run, end_line=end, start_line__lt=last)
        .only(*LINE_FIELDS)
        .first()
        if end is not None
        else None
    )
    return [*inside, after] if after else inside


def _between(run: Run, first: int, last: int) -> list[LogLine]:
    if last < first:
        return []
    return [
        line for line in _lines(_events_covering(run, first, last)) if first <= line.number <= last
    ]


def run_log_tail(*, run: Run, lines: int = TAIL_LINES) -> tuple[list[LogLine], int]:
    """The last `lines` lines of the log and the counter of the last event shown."""
    events = list(
        RunEvent.objects.filter(run=run, end_line__gt=max(run.line_count - lines, 0))
        .only(*LINE_FIELDS)
        .order_by("counter")
    )
    return _lines(events), (events[-1].counter if events else 0)


def run_log_after(*, run: Run, counter: int, limit: int = 2000) -> tuple[list[LogLine], int, bool]:
    """Lines of the events after `counter` (what a live page has not shown yet), the
    last event's counter, and whether more events may follow (the limit was hit).
    Events without output add no line: the limit counts events, not lines."""
    if counter >= run.event_count:
        # Nothing stored after it when the run was read: no event to look for.
        return [], counter, False
    # Only the events stored when the run was read: its progress, read with it, is what
    # they make. A batch committed meanwhile comes with the next poll, and its progress
    # with it (otherwise a poll would show the new lines with the old progress, and the
    # polls after it, with nothing new, would never draw the progress again).
    events = list(
        RunEvent.objects.filter(run=run, counter__gt=counter, counter__lte=run.event_count)
        .only(*LINE_FIELDS)
        .order_by("counter")[:limit]
    )
    return _lines(events), (events[-1].counter if events else counter), len(events) >= limit


def run_log_before(*, run: Run, line: int, lines: int = CHUNK_LINES) -> list[LogLine]:
    """The `lines` lines before line number `line`, for "show earlier lines"."""
    return _between(run, max(line - lines, 1), line - 1)


def run_log_later(*, run: Run, line: int, lines: int = CHUNK_LINES) -> list[LogLine]:
    """The `lines` lines after line number `line`, for "show later lines" below a window."""
    return _between(run, line + 1, min(line + lines, run.line_count))


def run_log_window(*, run: Run, line: int, lines: int = TAIL_LINES) -> list[LogLine]:
    """About `lines` lines around line number `line` (a `#L123` link, a search match):
    half before it, half after, kept inside the log."""
    last = min(max(line + lines // 2, lines), run.line_count)
    return _between(run, max(last - lines + 1, 1), last)


DOWNLOAD_EVENTS = 5000  # events read, and text sent (about 1 MB), at a time


class UTCText(Func):
    """A datetime column as text in UTC, "YYYY-MM-DD HH:MM:SS.ffffff", formatted by the
    database: the download reads one per event, and Django's conversion of each to a
    datetime cost more than the rest of a line's work."""

    output_field = TextField()

    def as_postgresql(self, compiler, connection, **extra):
        template = "to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
        return self.as_sql(compiler, connection, template=template, **extra)

    def as_sqlite(self, compiler, connection, **extra):
        # Django keeps naive UTC text there, without the fraction when it is zero.
        template = (
            "CASE WHEN instr(%(expressions)s, '.') = 0 "
            "THEN %(expressions)s || '.000000' ELSE %(expressions)s END"
        )
        return self.as_sql(compiler, connection, template=template, **extra)


def _download_rows(rows) -> Iterator[tuple]:
    """The rows of `rows`, DOWNLOAD_EVENTS at a time. On PostgreSQL, streamed (libpq's
    chunked rows mode): the server sends the next rows while this process writes the
    lines of those before them, where a server-side cursor's FETCH waited for each piece
    in turn (the query was ~40% of a download's time, on the other core)."""
    if connection.vendor != "postgresql" or psycopg.pq.version() < 170000:
        yield from rows.iterator(DOWNLOAD_EVENTS)
        return
    sql, params = rows.query.sql_with_params()
    with connection.cursor() as cursor:
        # Plain columns (text, integers): nothing for Django to convert.
        yield from cursor.cursor.stream(sql, params, size=DOWNLOAD_EVENTS)


class _Stamps:
    """The download's timestamp of each event's UTC text, as _clock writes it: the
    conversion to the reader's time zone is done once per second of the log (the
    offset is the same for the whole second), the milliseconds copied from the text."""

    def __init__(self):
        self.seconds: dict[str, tuple[str, str]] = {}

    def __call__(self, utc: str | None) -> str:
        if utc is None:
            return ""
        second = self.seconds.get(utc[:19])
        if second is None:
            if len(self.seconds) > DOWNLOAD_EVENTS:
                self.seconds.clear()
            created = datetime.fromisoformat(utc[:19]).replace(tzinfo=UTC)
            stamp = _clock(created)[0]  # "YYYY-MM-DDTHH:MM:SS.000" and its zone
            second = self.seconds[utc[:19]] = (stamp[:20], stamp[23:])
        return f"{second[0]}{utc[20:23]}{second[1]}"


def _download_text(rows: list[tuple], stamps: _Stamps) -> str:
    """The download's lines of these events, tab-separated number, timestamp and text.
    Assembled from whole columns (texts, numbers, stamps) of the piece, not line by line:
    the work left per line is done inside str and list methods."""
    stdouts, starts, ends, utcs = ([row[n] for row in rows] for n in range(4))
    counts = list(map(operator.sub, ends, starts))
    texts = plain_lines_of(stdouts, counts)
    if starts[1:] == ends[:-1] and ends[-1] - starts[0] == len(texts):
        numbers = range(starts[0] + 1, ends[-1] + 1)  # each event goes on from the last
    else:
        numbers = [
            n for start, end in zip(starts, ends, strict=True) for n in range(start + 1, end + 1)
        ]
    # Each time once (events printed in the same millisecond share it).
    stamp = {utc: f"\t{stamps(utc)}\t" for utc in set(utcs)}
    parts = [""] * (4 * len(texts))
    parts[0::4] = map(str, numbers)
    parts[1::4] = chain.from_iterable(map(repeat, map(stamp.__getitem__, utcs), counts))
    parts[2::4] = texts
    parts[3::4] = repeat("\n", len(texts))
    return "".join(parts)


def run_log_text(*, run: Run) -> Iterator[str]:
    """The whole log as plain text, one line at a time: number, timestamp, text, as the
    page shows them, without colour codes. Read as tuples in the events' order (the
    (run, counter) index), sent in pieces of DOWNLOAD_EVENTS events."""
    rows = _download_rows(
        RunEvent.objects.filter(run=run)
        .order_by("counter")
        .values_list("stdout", "start_line", "end_line", UTCText("created"))
    )
    stamps = _Stamps()
    while piece := list(islice(rows, DOWNLOAD_EVENTS)):
        yield _download_text(piece, stamps)


@dataclass(frozen=True)
class RunProgress:
    tasks_seen: int
    tasks_done: int
    current_task: str
    hosts_ok: int
    hosts_failed: int
    final: bool


def run_progress(*, run: Run) -> RunProgress:
    """How far the run has got: tasks started and finished (a task is finished once the
    next one started, or the run ended), and hosts without and with failures. Read from
    the run's row, kept up to date as its events are stored: no event is read (but once,
    for a run stored before that was so)."""
    progress = run.progress
    if progress is None:
        progress = progress_count(run.pk)
        Run.objects.filter(pk=run.pk, progress__isnull=True).update(progress=progress)
        run.progress = progress
    seen = progress.get("tasks", 0)
    if run.is_final and run.host_summary:
        failed = sum(
            1 for c in run.host_summary.values() if c.get("failed") or c.get("unreachable")
        )
        ok = len(run.host_summary) - failed
    else:
        hosts = progress.get("hosts", {})
        failed = sum(1 for failures in hosts.values() if failures)
        ok = len(hosts) - failed
    return RunProgress(
        tasks_seen=seen,
        tasks_done=seen if run.is_final else max(seen - 1, 0),
        current_task="" if run.is_final else plain_text(progress.get("task", "")),
        hosts_ok=ok,
        hosts_failed=failed,
        final=run.is_final,
    )


@dataclass(frozen=True)
class TaskDiff:
    task: str
    host: str
    lines: list[tuple[str, str]]  # (kind: "add", "del", "hunk", "head" or "", text)


def _diff_kind(text: str) -> str:
    if text.startswith(("+++", "---")):
        return "head"
    if text.startswith("+"):
        return "add"
    if text.startswith("-"):
        return "del"
    if text.startswith("@@"):
        return "hunk"
    return ""


def run_diffs(*, run: Run) -> list[TaskDiff]:
    """What each task changed, or would change in a dry run (`--check --diff`), per host
    (a loop's items together): the diffs Ansible printed (its `runner_on_file_diff`
    events; their data holds the raw before/after, the printed text covers every shape
    of it: text, dicts of file attributes, prepared diffs)."""
    events = (
        RunEvent.objects.filter(run=run, event="runner_on_file_diff")
        .exclude(stdout="")
        .only("task", "host", "stdout")
        .order_by("counter")
    )
    diffs = []
    for event in events:
        text = [plain_text(t) for t in split_lines(event.stdout)]
        lines = [(_diff_kind(t), t) for t in text if t.strip()]
        if not lines:
            continue
        if diffs and (diffs[-1].task, diffs[-1].host) == (event.task, event.host):
            diffs[-1].lines.extend(lines)  # the items of a loop: one task
        else:
            diffs.append(
                TaskDiff(task=plain_text(event.task), host=plain_text(event.host), lines=lines)
            )
    return diffs
