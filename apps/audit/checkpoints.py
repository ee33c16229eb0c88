"""Signed checkpoints of the audit log, published outside the database.

A checkpoint says "the log had `sequence` rows, the last one hashing to `hash`,
at `time`", signed with an Ed25519 key that only the portal holds
(AUDIT_SIGNING_KEY; by default one generated at the first start in
var/audit_signing_key). It is appended to a file (AUDIT_CHECKPOINT_FILE, by
default var/audit-checkpoints.jsonl) and/or POSTed to a webhook
(AUDIT_CHECKPOINT_WEBHOOK): places the database's admins cannot rewrite, when
they are kept apart from the database. Anyone with the public key can check one: the signed message
is the ASCII text

    pushbutton-audit-checkpoint:v1:<sequence>:<hash>:<time>

and `signature` is the base64 of its Ed25519 signature.
"""

import base64
import hashlib
import json
import os
import urllib.error
import urllib.request
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.utils import timezone

from apps.audit.chain import GENESIS, canonical_time
from apps.audit.models import AuditCheckpoint, AuditEvent

MESSAGE_PREFIX = "pushbutton-audit-checkpoint:v1"
CHECKPOINT_FIELDS = ("sequence", "hash", "time", "key_id", "signature")


class CheckpointError(Exception):
    """A checkpoint that cannot be made, read or trusted; the message says why."""


# --- keys ------------------------------------------------------------------------
def _key_bytes(text: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except ValueError as exc:
        raise CheckpointError("A key is PEM text or the base64 of its 32 raw bytes.") from exc


def load_private_key(text: str) -> Ed25519PrivateKey:
    try:
        if "BEGIN" in text:
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            key = Ed25519PrivateKey.from_private_bytes(_key_bytes(text))
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"AUDIT_SIGNING_KEY is not an Ed25519 private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointError("AUDIT_SIGNING_KEY is not an Ed25519 private key.")
    return key


def load_public_key(text: str) -> Ed25519PublicKey:
    try:
        if "BEGIN" in text:
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = Ed25519PublicKey.from_public_bytes(_key_bytes(text))
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"Not an Ed25519 public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise CheckpointError("Not an Ed25519 public key.")
    return key


def public_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def key_id(key: Ed25519PublicKey) -> str:
    """Which key signed: the first 16 hex digits of the SHA-256 of its raw bytes."""
    return hashlib.sha256(public_raw(key)).hexdigest()[:16]


def signing_key() -> Ed25519PrivateKey:
    if not settings.AUDIT_SIGNING_KEY:
        raise CheckpointError(
            "No signing key: set AUDIT_SIGNING_KEY (make one with "
            "`manage.py audit_checkpoint --generate-key`)."
        )
    return load_private_key(settings.AUDIT_SIGNING_KEY)


def verifying_key(text: str = "") -> Ed25519PublicKey | None:
    """The public key from `text`, AUDIT_PUBLIC_KEY or the signing key, or None."""
    text = text or settings.AUDIT_PUBLIC_KEY
    if text:
        if os.path.isfile(text):
            text = Path(text).read_text()
        return load_public_key(text)
    if settings.AUDIT_SIGNING_KEY:
        return signing_key().public_key()
    return None


def key_generate() -> tuple[str, Ed25519PublicKey]:
    """A new signing key (base64 of its raw bytes, for AUDIT_SIGNING_KEY) and its public key."""
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(raw).decode(), key.public_key()


# --- checkpoints ---------------------------------------------------------------------
def checkpoint_message(*, sequence: int, hash: str, time: str) -> bytes:
    return f"{MESSAGE_PREFIX}:{sequence}:{hash}:{time}".encode("ascii")


def checkpoint_signature_valid(checkpoint: dict, key: Ed25519PublicKey) -> bool:
    try:
        key.verify(
            base64.b64decode(checkpoint["signature"]),
            checkpoint_message(
                sequence=checkpoint["sequence"], hash=checkpoint["hash"], time=checkpoint["time"]
            ),
        )
    except (InvalidSignature, ValueError, KeyError):
        return False
    return True


def checkpoints_read(path: Path) -> list[dict]:
    """The checkpoints of a published file, oldest first; malformed lines are errors."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise CheckpointError(f"Cannot read the checkpoint file {path}: {exc.strerror}.") from exc
    checkpoints = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            checkpoint = json.loads(line)
            valid = (
                isinstance(checkpoint, dict)
                and all(name in checkpoint for name in CHECKPOINT_FIELDS)
                and isinstance(checkpoint["sequence"], int)
            )
        except ValueError:
            valid = False
        if not valid:
            raise CheckpointError(f"{path}, line {number}: not a checkpoint.")
        checkpoint["line"] = number
        checkpoints.append(checkpoint)
    return checkpoints


def audit_checkpoint_create() -> AuditCheckpoint:
    """Sign the log's current head and publish it to the file and the webhook configured.

    The checkpoint is kept (with any publishing error) even when publishing
    fails; the caller reports `publish_errors`.
    """
    key = signing_key()
    sequence, head = AuditEvent.objects.order_by("-id").values_list("id", "hash").first() or (
        0,
        GENESIS,
    )
    now = timezone.now().replace(microsecond=0)
    time = canonical_time(now)
    signature = key.sign(checkpoint_message(sequence=sequence, hash=head, time=time))
    statement = {
        "type": "pushbutton-audit-checkpoint",
        "sequence": sequence,
        "hash": head,
        "time": time,
        "key_id": key_id(key.public_key()),
        "signature": base64.b64encode(signature).decode(),
    }
    published, errors = [], []
    if settings.AUDIT_CHECKPOINT_FILE:
        try:
            _append(Path(settings.AUDIT_CHECKPOINT_FILE), json.dumps(statement))
            published.append(f"file:{settings.AUDIT_CHECKPOINT_FILE}")
        except OSError as exc:
            errors.append(f"file {settings.AUDIT_CHECKPOINT_FILE}: {exc.strerror or exc}")
    if settings.AUDIT_CHECKPOINT_WEBHOOK:
        try:
            _post(settings.AUDIT_CHECKPOINT_WEBHOOK, statement)
            published.append(f"webhook:{settings.AUDIT_CHECKPOINT_WEBHOOK}")
        except (OSError, ValueError) as exc:
            errors.append(f"webhook {settings.AUDIT_CHECKPOINT_WEBHOOK}: {exc}")
    return AuditCheckpoint.objects.create(
        sequence=sequence,
        hash=head,
        signed_at=now,
        key_id=statement["key_id"],
        signature=statement["signature"],
        published_to=published,
        publish_errors=errors,
    )


def _append(path: Path, line: str) -> None:
    """Append one line and make it durable (O_APPEND: never rewrites what is there)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _post(url: str, statement: dict) -> None:
    if not url.startswith(("https://", "http://")):
        raise ValueError("the webhook must be an http(s) URL")
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        url,
        data=json.dumps(statement).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "pushbutton-audit"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            if response.status >= 300:
                raise ValueError(f"answered {response.status}")
    except urllib.error.HTTPError as exc:
        raise ValueError(f"answered {exc.code}") from exc
    except urllib.error.URLError as exc:
        raise ValueError(str(exc.reason)) from exc
