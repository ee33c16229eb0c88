"""The audit log as CSV and JSON Lines, produced row by row for streaming, and archives."""

import csv
import gzip
import hashlib
import io
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.utils import timezone

from apps.audit.chain import canonical_ip, canonical_time
from apps.audit.selectors import EXPORT_COLUMNS

ROWS_PER_CHUNK = 1000
CSV_HEADER = ("sequence", *EXPORT_COLUMNS[1:])
# A spreadsheet runs a cell that starts like a formula: such text gets a leading "'".
FORMULA_START = "=+-@\t\r"
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _row_values(row: tuple) -> list:
    values = list(row)
    if values[5] is not None and ":" in values[5]:
        values[5] = canonical_ip(values[5])
    return values


# Columns that may hold what a user typed (a name tried at sign-in, a user agent...).
TEXT_COLUMNS = tuple(
    EXPORT_COLUMNS.index(name)
    for name in (
        "actor_name", "user_agent", "verb", "object_type", "object_id", "object_repr",
        "service", "environment",
    )
)  # fmt: skip


def jsonl_chunks(rows: Iterable[tuple]) -> Iterator[str]:
    """One JSON object per line: every column of the row (so its hash can be checked),
    `details` as an object. Yields a chunk of lines at a time."""
    names = [name for name in EXPORT_COLUMNS if name != "details"]
    details_at = EXPORT_COLUMNS.index("details")
    buffer: list[str] = []
    for row in rows:
        values = _row_values(row)
        details = values.pop(details_at)
        line = _dumps(dict(zip(names, values, strict=True)))
        buffer.append(f'{line[:-1]},"details":{details}}}\n')
        if len(buffer) >= ROWS_PER_CHUNK:
            yield "".join(buffer)
            buffer.clear()
    if buffer:
        yield "".join(buffer)


def csv_chunks(rows: Iterable[tuple]) -> Iterator[str]:
    """A header, then one line per row; `details` as its JSON text."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for count, row in enumerate(rows, 1):
        values = _row_values(row)
        for index in TEXT_COLUMNS:
            value = values[index]
            if value and value[0] in FORMULA_START:
                values[index] = "'" + value
        writer.writerow(values)
        if count % ROWS_PER_CHUNK == 0:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


# --- archives ----------------------------------------------------------------------
def archive_write(path: Path, rows: Iterable[tuple]) -> dict:
    """Write rows (oldest first) as JSON Lines, gzip-compressed when `path` ends in .gz,
    and a manifest beside it; return the manifest."""
    path = Path(path)
    digest = hashlib.sha256()
    manifest = {"file": path.name, "rows": 0, "first_sequence": None, "last_sequence": None}
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as out:
        for chunk in jsonl_chunks(_remember(rows, manifest)):
            out.write(chunk)
    with path.open("rb") as written:
        while block := written.read(1 << 20):
            digest.update(block)
    manifest["sha256"] = digest.hexdigest()
    manifest["written_at"] = canonical_time(timezone.now())
    path.with_name(path.name + ".manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _remember(rows: Iterable[tuple], manifest: dict) -> Iterator[tuple]:
    for row in rows:
        if manifest["first_sequence"] is None:
            manifest["first_sequence"] = row[0]
            manifest["first_prev_hash"] = row[15]
        manifest["last_sequence"], manifest["last_hash"] = row[0], row[16]
        manifest["rows"] += 1
        yield row


@contextmanager
def open_archive(path: Path):
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as lines:
        yield (line for line in lines if line.strip())
