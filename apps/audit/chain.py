"""The canonical form of an audit row, and its hash.

A row's hash is the SHA-256 (hex) of this text, as UTF-8: a JSON array, compact
(no spaces), ASCII-only (other characters as \\uXXXX escapes), of these values in
this order:

    id, created_at, actor_id, actor_name, via, ip, user_agent, verb,
    object_type, object_id, object_repr, service, environment, details,
    outcome, prev_hash

- created_at: UTC, "YYYY-MM-DDTHH:MM:SS.ffffffZ" (always six fraction digits);
- ip: null, or the address in its short text form (an IPv4-mapped IPv6
  address is written as the IPv4 address);
- details: the SHA-256 (hex) of the details' canonical JSON text, which is
  what the database stores: keys sorted at every level, no spaces, UTF-8,
  integral numbers without a fraction (Python: json.dumps(details,
  sort_keys=True, separators=(",", ":"), ensure_ascii=False));
- prev_hash: the previous row's hash, or 64 zeros for the first row.

The database keeps every value in this form (details as its canonical text),
so the hash is recomputed from exactly what it returns, on SQLite as on
PostgreSQL, and from an export or an archive.
"""

import hashlib
import ipaddress
import json
import math
from datetime import UTC, datetime
from functools import lru_cache

GENESIS = "0" * 64
FIELDS = (
    "id", "created_at", "actor_id", "actor_name", "via", "ip", "user_agent", "verb",
    "object_type", "object_id", "object_repr", "service", "environment", "details",
    "outcome", "prev_hash",
)  # fmt: skip
# Column lengths of the model: values are cut to them before hashing, so the
# database never has to cut (PostgreSQL refuses) or keeps more than was hashed.
MAX_LENGTHS = {
    "actor_name": 150, "user_agent": 300, "verb": 64, "object_type": 64, "object_id": 64,
    "object_repr": 200, "service": 100, "environment": 100,
}  # fmt: skip

_encode = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode
chain_encode = _encode
_details_encode = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
).encode


def canonical_time(value: datetime) -> str:
    value = value.astimezone(UTC)
    return f"{value:%Y-%m-%dT%H:%M:%S}.{value.microsecond:06d}Z"


def parse_canonical_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@lru_cache(maxsize=4096)
def canonical_ip(value: str | None) -> str | None:
    """The address in a form every Python version and PostgreSQL agree on; None if invalid."""
    if not value:
        return None
    try:
        address = ipaddress.ip_address(str(value).split("%")[0].split("/")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.compressed


def clean_text(value, field: str = "") -> str:
    """Text as both databases keep it: no NUL, no lone surrogate, cut to the column."""
    text = "" if value is None else str(value)
    text = text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    limit = MAX_LENGTHS.get(field)
    return text[:limit] if limit else text


def json_safe(value):
    """`value` as JSON that survives a round trip through either database unchanged.

    Keys become text, tuples lists, integral floats integers (PostgreSQL's jsonb
    would), non-finite floats and other objects their text.
    """
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return int(value) if value.is_integer() else value
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [json_safe(v) for v in value]
        return sorted(items, key=_details_encode) if isinstance(value, set | frozenset) else items
    if isinstance(value, datetime):
        return canonical_time(value)
    return clean_text(value)


def details_text(details) -> str:
    """The canonical JSON text of a row's details (what the database stores)."""
    return _details_encode(details)


def row_hash(values) -> str:
    """SHA-256 of the canonical content: `values` in FIELDS order, already canonical,
    `details` as its canonical text (or an object, encoded here)."""
    values = list(values)
    details = values[13] if isinstance(values[13], str) else details_text(values[13])
    values[13] = hashlib.sha256(details.encode()).hexdigest()
    return hashlib.sha256(_encode(values).encode()).hexdigest()


def event_values(event) -> list:
    """The canonical values of an AuditEvent instance (saved or about to be)."""
    return [
        event.id,
        canonical_time(event.created_at),
        event.actor_id,
        event.actor_name,
        event.via,
        canonical_ip(event.ip),
        event.user_agent,
        event.verb,
        event.object_type,
        event.object_id,
        event.object_repr,
        event.service,
        event.environment,
        details_text(event.details),
        event.outcome,
        event.prev_hash,
    ]
