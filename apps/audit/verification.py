"""Walking the chain: is every row what was written, and is nothing missing?"""

import hashlib
import json
import queue
import threading
import time as clock
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from django.db import DatabaseError, connection, transaction

from apps.audit.chain import GENESIS, canonical_ip, canonical_time, chain_encode, details_text
from apps.audit.checkpoints import (
    CheckpointError,
    checkpoint_signature_valid,
    checkpoints_read,
    verifying_key,
)
from apps.audit.models import AuditHead, AuditVerification
from apps.audit.triggers import event_trigger_notes, triggers_problems

MAX_PROBLEMS = 20
BATCH = 10_000


@dataclass
class Problem:
    sequence: int | None  # None: a problem of the database, not of a row
    message: str

    def __str__(self) -> str:
        return self.message if self.sequence is None else f"row #{self.sequence}: {self.message}"


@dataclass
class ChainReport:
    rows_checked: int = 0
    first_sequence: int = 0
    last_sequence: int = 0
    last_hash: str = GENESIS
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    checkpoints_checked: int = 0
    newest_checkpoint: dict | None = None
    notes: list[str] = field(default_factory=list)
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    @property
    def rate(self) -> float:
        return self.rows_checked / self.duration if self.duration else 0.0

    def add(self, sequence: int | None, message: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(sequence, message))


def chain_check(
    rows: Iterable[tuple],
    *,
    checkpoints: list[dict] = (),
    start_sequence: int = 1,
    start_prev_hash: str = GENESIS,
    report: ChainReport | None = None,
    complete: bool = True,
) -> ChainReport:
    """Check rows given oldest first as (id, created_at, ..., prev_hash, hash) tuples.

    Values must already be in their canonical form (apps/audit/chain.py) except
    `ip` (any text form) and `details` (a dict, or its JSON text). Checks that
    sequence numbers follow each other from `start_sequence`, that each row
    chains to the one before, that its content matches its hash, and that the
    rows at each checkpoint have the hash it signed. A `complete` log must also
    reach every checkpoint (an archive need not).
    """
    report = report or ChainReport()
    signed = {c["sequence"]: c for c in checkpoints}
    expected_id, prev = start_sequence, start_prev_hash
    report.first_sequence = start_sequence
    started = clock.monotonic()
    # The hash of chain.row_hash, inlined: this loop is the verification's speed, so
    # helpers are called only when a row is wrong.
    sha256, encode = hashlib.sha256, chain_encode
    for row in rows:
        values = list(row[:16])
        sequence, stored_prev, stored = values[0], values[15], row[16]
        if values[5] is not None and ":" in values[5]:
            values[5] = canonical_ip(values[5])
        details = values[13]
        if not isinstance(details, str):
            details = details_text(details)
        values[13] = sha256(details.encode()).hexdigest()
        if sequence != expected_id or stored_prev != prev:
            _out_of_order(report, sequence, expected_id)
        if sha256(encode(values).encode()).hexdigest() != stored:
            report.add(sequence, "its content does not match its hash: it was changed.")
        checkpoint = signed.get(sequence)
        if checkpoint is not None and checkpoint["hash"] != stored:
            report.add(
                sequence,
                f"its hash differs from the one signed at {checkpoint['time']}: "
                "the log was rewritten from here or before.",
            )
        report.rows_checked += 1
        expected_id, prev = sequence + 1, stored
    report.last_sequence, report.last_hash = expected_id - 1, prev
    if complete:
        _cut_from_the_end(report, signed)
    report.duration += clock.monotonic() - started
    return report


def _out_of_order(report: ChainReport, sequence: int, expected_id: int) -> None:
    """Row `sequence` is not the one expected after the previous, or does not chain to it."""
    if sequence == expected_id:
        report.add(
            sequence,
            f"its previous hash is not the hash of row #{sequence - 1}: "
            "a row before it was changed or replaced.",
        )
        return
    missing = (
        f"row #{expected_id} is missing"
        if sequence == expected_id + 1
        else f"rows #{expected_id} to #{sequence - 1} are missing"
    )
    report.add(expected_id, f"{missing} (the log goes from #{expected_id - 1} to #{sequence}).")


def _cut_from_the_end(report: ChainReport, signed: dict[int, dict]) -> None:
    """A complete log reaches every checkpoint: the first one past its end is named."""
    for checkpoint in sorted(signed.values(), key=lambda c: c["sequence"]):
        if checkpoint["sequence"] > report.last_sequence:
            report.add(
                report.last_sequence + 1,
                f"rows were cut from the end: the checkpoint signed at {checkpoint['time']} "
                f"covers #{checkpoint['sequence']}, the log ends at #{report.last_sequence}.",
            )
            return


def _database_rows(after: int = 0) -> Iterator[tuple]:
    """Every row after `after`, oldest first, as canonical tuples, in batches."""
    table = "audit_auditevent"
    if connection.vendor == "postgresql":
        created = "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    else:
        created = "created_at"
    sql = (
        f"SELECT id, {created}, actor_id, actor_name, via, ip, user_agent, verb, "  # noqa: S608
        "object_type, object_id, object_repr, service, environment, details, outcome, "
        f"prev_hash, hash FROM {table} WHERE id > %s ORDER BY id"
    )
    if connection.vendor == "postgresql":
        # A server-side cursor inside a transaction: rows stream, memory stays flat;
        # the next batch is read while this one is hashed.
        with transaction.atomic():
            cursor = connection.chunked_cursor()
            try:
                cursor.execute(sql, [after])
                raw = cursor.cursor
                for batch in _read_ahead(lambda: raw.fetchmany(BATCH)):
                    yield from batch
            finally:
                cursor.close()
        return
    # SQLite: no transaction, which would take the write lock (IMMEDIATE) for the
    # whole walk; one SELECT reads one snapshot in WAL mode anyway.
    with connection.cursor() as cursor:
        cursor.execute(sql, [after])
        while batch := cursor.fetchmany(BATCH):
            yield from ((r[0], _sqlite_time(r[1]), *r[2:]) for r in batch)


def _read_ahead(fetch, depth: int = 3) -> Iterator[list]:
    """The batches `fetch()` returns until an empty one, fetched in a thread ahead of use."""
    batches: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce():
        try:
            while not stop.is_set():
                batch = fetch()
                while not stop.is_set():
                    try:
                        batches.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if not batch:
                    return
        except Exception as exc:  # handed to the reader, raised there
            batches.put(exc)

    thread = threading.Thread(target=produce, name="audit-verify-read", daemon=True)
    thread.start()
    try:
        while True:
            batch = batches.get()
            if isinstance(batch, Exception):
                raise batch
            if not batch:
                return
            yield batch
    finally:
        stop.set()
        thread.join()


def _sqlite_time(value) -> str:
    # Django keeps SQLite datetimes as naive UTC (its connection parses them back).
    if isinstance(value, datetime):
        return canonical_time(value.replace(tzinfo=UTC))
    value = value.replace(" ", "T")
    return (value if "." in value else value + ".000000") + "Z"


def checkpoints_load(path: Path | None, *, public_key: str = "") -> tuple[list[dict], list[str]]:
    """The checkpoints of `path` whose signature holds; notes on what could not be trusted."""
    if path is None:
        return [], ["No checkpoint file: rows cut from the end cannot be detected."]
    checkpoints = checkpoints_read(path)
    key = verifying_key(public_key)
    if key is None:
        raise CheckpointError(
            "No public key to check the checkpoints' signatures: give --public-key "
            "or set AUDIT_PUBLIC_KEY."
        )
    for checkpoint in checkpoints:
        if not checkpoint_signature_valid(checkpoint, key):
            raise CheckpointError(
                f"{path}, line {checkpoint['line']}: the signature does not hold "
                "(forged, altered, or signed with another key)."
            )
    return checkpoints, []


def audit_verify(*, checkpoints: list[dict] = (), notes: list[str] = ()) -> ChainReport:
    """Check that the database still refuses changes to the log (its triggers), then walk
    the whole chain; store the result (AuditVerification). A trigger missing, disabled or
    altered is a failure, as a changed row is."""
    started = clock.monotonic()
    report = ChainReport(notes=list(notes))
    problems = triggers_problems()
    for problem in problems:
        report.add(None, f"The append-only protection is broken: {problem}.")
    if problems:
        report.notes.append(
            "Until its triggers are back (`manage.py audit_triggers --install`), the "
            "database no longer refuses changes to the audit log."
        )
    report.notes += event_trigger_notes()
    if not any(problem.damages_the_log for problem in problems):
        _walk(report, checkpoints)
    report.duration = clock.monotonic() - started
    first = report.problems[0] if report.problems else None
    AuditVerification.objects.create(
        duration=report.duration,
        ok=report.ok,
        rows_checked=report.rows_checked,
        last_sequence=report.last_sequence,
        last_hash=report.last_hash,
        first_bad_sequence=first.sequence if first else None,
        problem=str(first) if first else "; ".join(report.notes),
        checkpoint_sequence=(report.newest_checkpoint or {}).get("sequence"),
        checkpoints_checked=report.checkpoints_checked,
    )
    return report


def _walk(report: ChainReport, checkpoints: list[dict]) -> None:
    """The chain in the database against the checkpoints and the head."""
    try:
        # Read before the rows: any row the head counts is then visible to the walk.
        head_id = AuditHead.objects.filter(id=1).values_list("last_id", flat=True).first() or 0
        chain_check(_database_rows(), checkpoints=checkpoints, report=report)
    except DatabaseError as exc:
        report.add(None, f"The audit log cannot be read: {exc}")
        return
    report.checkpoints_checked = len(checkpoints)
    report.newest_checkpoint = max(checkpoints, key=lambda c: c["sequence"], default=None)
    if head_id > report.last_sequence and report.ok:
        report.add(
            report.last_sequence + 1,
            f"rows were cut from the end: the chain head says #{head_id}, "
            f"the log ends at #{report.last_sequence}.",
        )


def archive_rows(path: Path) -> Iterator[tuple]:
    """The rows of an archive written by `manage.py audit_archive`, as tuples."""
    from apps.audit.chain import FIELDS
    from apps.audit.exports import open_archive

    with open_archive(path) as lines:
        for line in lines:
            row = json.loads(line)
            yield (*(row[name] for name in FIELDS), row["hash"])
