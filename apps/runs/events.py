"""Turning ansible-runner events into stored RunEvents, in batches.

The runner calls `EventSink.add` for each event in its own loop, so `add` stays
cheap: it masks secrets, keeps what the pages need and buffers. Rows are
written with one bulk INSERT per batch (size or age), never one per event.
"""

import contextlib
import json
import logging
import re
import time
from datetime import datetime

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils.dateparse import parse_datetime

from apps.catalog.parameters import MASK
from apps.runs.ansi import has_terminal_string, split_lines
from apps.runs.models import Run, RunEvent
from apps.runs.progress import progress_add, progress_count

log = logging.getLogger(__name__)

# The portal's own event: the run's first line, saying what is run where (runner.py).
START_EVENT = "pushbutton_start"
# Pauses between tries to store a batch when the database connection dropped.
FLUSH_RETRY_DELAYS = (0.1, 0.5, 1, 2, 4, 8)
# event_data keys worth keeping for the pages (diffs, results, summary counts).
KEPT_DATA = (
    "res",
    "diff",
    "duration",
    "start",
    "end",
    "play_pattern",
    "task_action",
    "ignore_errors",
)
STATS_KEYS = {
    "ok": "ok",
    "changed": "changed",
    "failures": "failed",
    "dark": "unreachable",
    "skipped": "skipped",
    "rescued": "rescued",
    "ignored": "ignored",
}


# What no database stores: NUL (PostgreSQL, in text and JSON) and lone surrogates (any;
# Ansible passes on the bytes of a command's output that are not UTF-8 as those). Kept
# visible as U+2400 (the picture of NUL) and U+FFFD.
NOT_STORABLE = re.compile(r"[\x00\ud800-\udfff]")


def _storable_char(match: re.Match) -> str:
    return "\u2400" if match.group() == "\x00" else "\ufffd"


def storable(value):
    """The value (a string, or a structure of them: keys too) as the database can store it."""
    if isinstance(value, str):
        return NOT_STORABLE.sub(_storable_char, value) if NOT_STORABLE.search(value) else value
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value


# Lines of a multi-line secret (an SSH key) this long are masked on their own too,
# so a key printed in part, or wrapped differently, does not show either.
SECRET_LINE_CHARS = 12


def secret_forms(secret: str) -> set[str]:
    """The ways a secret value can appear in output: as it is, JSON-escaped (Ansible
    prints results as JSON), Python-escaped, and line by line when it has several."""
    forms = {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
    }
    if "\n" in secret:
        forms.update(
            line.strip() for line in split_lines(secret) if len(line.strip()) >= SECRET_LINE_CHARS
        )
    return {f for f in forms if len(f) >= 3}


class SecretMasker:
    """Replaces each known secret value, in each form it may take, with a mask
    (longest first, so a secret that contains another is masked whole)."""

    def __init__(self, secrets):
        values: set[str] = set()
        for secret in secrets:
            if isinstance(secret, str) and len(secret) >= 3:
                values |= secret_forms(secret)
        ordered = sorted(values, key=len, reverse=True)
        self.pattern = re.compile("|".join(re.escape(v) for v in ordered)) if ordered else None

    def text(self, value: str) -> str:
        if self.pattern is None or not value:
            return value
        return self.pattern.sub(MASK, value)

    def data(self, value):
        """The same structure with every string (keys too) masked."""
        if self.pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.data(k): self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value


class EventSink:
    def __init__(
        self, run_id: int, *, masker=None, secrets=(), batch_size=None, flush_seconds=None
    ):
        self.run_id = run_id
        # The run's one masker when the worker has it; else one for `secrets`.
        self.masker = masker or SecretMasker(secrets)
        self.batch_size = batch_size or settings.RUN_EVENT_BATCH_SIZE
        self.flush_seconds = (
            flush_seconds if flush_seconds is not None else settings.RUN_EVENT_FLUSH_SECONDS
        )
        self.buffer: list[RunEvent] = []
        self.last_flush = time.monotonic()
        self.first_line_stored = False
        # Ansible's counters and lines come after the portal's own (`start`), if any.
        self.counter_shift = self.line_shift = 0
        self.no_hosts_matched = False
        self.host_summary: dict = {}
        self.artifact_data: dict = {}

    def add(self, event: dict) -> bool:
        """Take one runner event. Returns False so the runner keeps no copy on disk."""
        name = event.get("event", "")
        data = event.get("event_data") or {}
        if name == "playbook_on_no_hosts_matched":
            self.no_hosts_matched = True
        elif name == "playbook_on_stats":
            self.host_summary = storable(self._summary(data))
            self.artifact_data = storable(self.masker.data(data.get("artifact_data") or {}))
        kept = {k: data[k] for k in KEPT_DATA if k in data}
        created = event.get("created")
        self.buffer.append(
            RunEvent(
                run_id=self.run_id,
                counter=event.get("counter", 0) + self.counter_shift,
                event=name[:64],
                created=parse_datetime(created) if isinstance(created, str) else created,
                # Ansible templates names: a task may be named after a secret variable.
                host=self._text(data.get("host") or data.get("remote_addr"))[:200],
                play=self._text(data.get("play"))[:500],
                task=self._text(data.get("task"))[:500],
                start_line=event.get("start_line", 0) + self.line_shift,
                end_line=event.get("end_line", 0) + self.line_shift,
                stdout=self._text(event.get("stdout")),
                failed=name in ("runner_on_failed", "runner_on_unreachable")
                and not data.get("ignore_errors"),
                changed=bool((data.get("res") or {}).get("changed"))
                if isinstance(data.get("res"), dict)
                else False,
                data=storable(self.masker.data(kept)) if kept else {},
            )
        )
        if len(self.buffer) >= self.batch_size or self._first_line():
            self.flush()
        return False

    def start(self, text: str, created: datetime) -> None:
        """The run's first line, written by the portal before Ansible prints anything
        (what runs where: a person watching sees it at once, not after ansible-playbook
        has started), and stored at once. Ansible's events are numbered after it."""
        self.buffer.append(
            RunEvent(
                run_id=self.run_id,
                counter=1,
                event=START_EVENT,
                created=created,
                start_line=0,
                end_line=1,
                stdout=self._text(text),
            )
        )
        self.counter_shift, self.line_shift = 1, 1
        self.flush()

    def _first_line(self) -> bool:
        """Whether the event just taken is the run's first with a line of output: written
        at once, so whoever watches sees the run begin without waiting for the next flush
        (later lines come in batches, every `flush_seconds`)."""
        if self.first_line_stored or not self.buffer[-1].stdout:
            return False
        self.first_line_stored = True
        return True

    def _text(self, value) -> str:
        return storable(self.masker.text(str(value or "")))

    def tick(self) -> None:
        """Called often by the runner loop: write what has waited long enough."""
        if self.buffer and time.monotonic() - self.last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write the buffered events. A dropped database connection is retried on a new
        one (for ~15 s); the unique (run, counter) makes a batch that did reach the
        database before the drop harmless to write again. Nothing is lost: after the
        last try the batch stays buffered and the error is raised."""
        self.last_flush = time.monotonic()
        if not self.buffer:
            return
        batch, self.buffer = self.buffer, []
        for delay in (*FLUSH_RETRY_DELAYS, None):
            try:
                self._write(batch)
            except (OperationalError, InterfaceError) as exc:
                if delay is None or connection.in_atomic_block:
                    self.buffer[:0] = batch
                    raise
                log.warning(
                    "Storing %s events of run %s failed (%s); trying again in %s s.",
                    len(batch),
                    self.run_id,
                    self.masker.text(str(exc).strip()),
                    delay,
                )
                with contextlib.suppress(Exception):
                    connection.close()
                time.sleep(delay)
            else:
                break

    def _write(self, batch: list[RunEvent]) -> None:
        events_store(self.run_id, batch)

    @staticmethod
    def _summary(data: dict) -> dict:
        hosts: dict[str, dict[str, int]] = {}
        for key, label in STATS_KEYS.items():
            for host, count in (data.get(key) or {}).items():
                hosts.setdefault(host, dict.fromkeys(STATS_KEYS.values(), 0))[label] = count
        for host in data.get("processed") or {}:
            hosts.setdefault(host, dict.fromkeys(STATS_KEYS.values(), 0))
        return hosts


def events_store(run_id: int, batch: list[RunEvent]) -> None:
    """Store a batch of a run's events, and with them, in the same transaction, what its
    pages read without counting events: the last counter, the lines, the progress. A
    batch stored before (retried after a dropped connection) changes nothing."""
    if not batch:
        return
    began = time.monotonic()
    for event in batch:
        event.terminal_string = has_terminal_string(event.stdout)
    with transaction.atomic():
        run = Run.objects.select_for_update().only("progress").get(pk=run_id)
        progress = run.progress if run.progress is not None else progress_count(run_id)
        # A retried batch (after a dropped connection) must not duplicate rows.
        if connection.vendor == "postgresql":
            stored = _insert_as_json(batch)
        else:
            counters = [e.counter for e in batch]
            known = set(
                RunEvent.objects.filter(run_id=run_id, counter__in=counters).values_list(
                    "counter", flat=True
                )
            )
            RunEvent.objects.bulk_create(batch, ignore_conflicts=True)
            stored = set(counters) - known
        Run.objects.filter(pk=run_id).update(
            event_count=Greatest("event_count", max(e.counter for e in batch)),
            line_count=Greatest("line_count", max(e.end_line for e in batch)),
            progress=progress_add(progress, (e for e in batch if e.counter in stored)),
            # The batch's latency: from the call to its rows written (the commit aside).
            ingest_batches=F("ingest_batches") + 1,
            ingest_seconds=F("ingest_seconds") + (time.monotonic() - began),
        )


def _insert_as_json(batch: list[RunEvent]) -> set[int]:
    """PostgreSQL: bulk_create's rows sent as one JSON document, ON CONFLICT DO NOTHING.

    Django 5.2 sends a bulk insert as one array per column (UNNEST), and psycopg
    escapes each quote inside those arrays in Python: that took three times as
    long as PostgreSQL took to store the rows, and held flushing to ~4,000
    events/s (bench/ingest.py). One json parameter is encoded in C and split into
    rows by the server, twice as fast, with the same columns and types.
    """
    fields = [f for f in RunEvent._meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    record = ", ".join(f"{quote(f.column)} {f.db_type(connection).split('(')[0]}" for f in fields)
    rows = [{f.column: getattr(event, f.attname) for f in fields} for event in batch]
    with connection.cursor() as cursor:
        cursor.execute(
            # Names from the model's own metadata, quoted; the rows are the one parameter.
            f"INSERT INTO {quote(RunEvent._meta.db_table)} ({columns}) SELECT {columns} "  # noqa: S608
            f"FROM json_to_recordset(%s::json) AS r({record}) ON CONFLICT DO NOTHING "
            f"RETURNING {quote('counter')}",
            [json.dumps(rows, default=datetime.isoformat)],
        )
        return {counter for (counter,) in cursor.fetchall()}
