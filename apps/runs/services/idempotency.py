"""Idempotent launches: a launch asked again with the same Idempotency-Key by the same
user, within a day, answers with the run the first one created, never a second run.

A key is stored as its SHA-256, with a keyed hash of each field of the request it came
with (so the same key with another request is refused, naming the fields that differ)
and the run, in the transaction that creates the run. The unique (user, key hash) is
what makes two identical launches at once create one run.
"""

import hashlib
import json
import logging
import time
from datetime import timedelta

from django.db import DatabaseError
from django.utils import timezone
from django.utils.crypto import salted_hmac

from apps.audit.constants import Outcome
from apps.audit.services import audit_record
from apps.runs.models import LaunchKey, Run
from apps.runs.services.checks import LaunchRefused

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
KEY_LIFETIME = timedelta(hours=24)
KEY_MAX_CHARS = 255
FORGET_AT_ONCE = 1000
FORGET_EVERY_SECONDS = 10.0  # in one process, between two passes over expired keys
_forgotten_at = [float("-inf")]  # time.monotonic() of this process's last pass


def key_problem(key: str) -> str | None:
    """Why `key` cannot be an idempotency key, or None."""
    if not key.strip():
        return f"An {HEADER} cannot be empty."
    if len(key) > KEY_MAX_CHARS:
        return f"An {HEADER} has at most {KEY_MAX_CHARS} characters."
    if not (key.isascii() and key.isprintable()):
        return f"An {HEADER} is printable ASCII (letters, digits, -, _, :, …)."
    return None


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def launch_fingerprint(kind: str, values: dict) -> dict:
    """What tells a request asked again from another one under the same key: per field
    (and the kind of launch: launch, promote, rollback), a hash of its value keyed with
    the portal's secret, so a secret parameter cannot be guessed back from it."""
    fields = {"request": kind, **values}
    return {
        name: salted_hmac(
            "pushbutton.launch-key",
            json.dumps(value, sort_keys=True, default=str, separators=(",", ":")),
        ).hexdigest()
        for name, value in sorted(fields.items())
    }


def launch_key_replay(*, user, key: str, fingerprint: dict, via: str, request=None) -> Run | None:
    """The run a launch with `key` by `user` created, while the key lasts, with its
    `replayed` set; None when the key is new (or expired). LaunchRefused (422, recorded
    in the audit log) when the key came with another request: it names the fields that
    differ and the run the key belongs to."""
    # One row at most (the key is unique per user): get(), with no ORDER BY to compile
    # on every launch that sends a key.
    found = LaunchKey.objects.filter(
        user=user, key_hash=key_hash(key), expires_at__gt=timezone.now(), run__isnull=False
    ).values_list("fingerprint", "run_id")
    try:
        then, run_id = found.get()
    except LaunchKey.DoesNotExist:
        return None
    run = Run.objects.select_related("service", "environment", "promoted_from").get(pk=run_id)
    names = fingerprint.keys() | then.keys()
    differ = sorted(n for n in names if fingerprint.get(n) != then.get(n))
    if differ:
        reason = (
            f"This {HEADER} was used within the last {KEY_LIFETIME.days * 24} hours for "
            f"another request, which launched run #{run.pk}; this one differs in "
            f"{', '.join(differ)}. Send a new key for a new launch."
        )
        audit_record(
            actor=user,
            via=via,
            verb="run.refused",
            obj=run,
            service=run.service.slug,
            environment=run.environment.slug,
            details={"reason": reason, "differs_in": differ, "run": run.pk},
            outcome=Outcome.REFUSED,
            request=request,
        )
        raise LaunchRefused(reason, status=422, field=HEADER)
    run.replayed = True
    return run


def launch_key_take(*, user, key: str, fingerprint: dict, run: Run) -> LaunchKey:
    """Hold `key` for `user` and `run`, in the transaction that creates the run. Raises
    IntegrityError when another launch holds it: one that committed, or, on PostgreSQL,
    one still going, once it commits. An expired row of the same key is forgotten first."""
    now, digest = timezone.now(), key_hash(key)
    LaunchKey.objects.filter(user=user, key_hash=digest, expires_at__lte=now).delete()
    return LaunchKey.objects.create(
        user=user,
        key_hash=digest,
        fingerprint=fingerprint,
        run=run,
        created_at=now,
        expires_at=now + KEY_LIFETIME,
    )


def launch_key_release(*, run: Run) -> None:
    """Forget the key of a run that never started (its broker was down): asking again with
    the key launches anew rather than answering with a run that never ran."""
    LaunchKey.objects.filter(run=run).delete()


def launch_keys_forget_expired_now_and_then() -> int:
    """launch_keys_forget_expired, at most every FORGET_EVERY_SECONDS in this process
    (called after each launch with a key). A key past its lifetime answers nothing
    already (launch_key_replay skips it, launch_key_take drops the one it meets):
    forgetting it is housekeeping, not worth statements on every launch."""
    now = time.monotonic()
    if now - _forgotten_at[0] < FORGET_EVERY_SECONDS:
        return 0
    _forgotten_at[0] = now
    return launch_keys_forget_expired()


def launch_keys_forget_expired() -> int:
    """Forget keys past their lifetime, some at a time. Another process forgetting the
    same rows at once is harmless: left to the next."""
    expired = LaunchKey.objects.filter(expires_at__lte=timezone.now()).values("pk")
    try:
        return LaunchKey.objects.filter(pk__in=expired[:FORGET_AT_ONCE]).delete()[0]
    except DatabaseError:
        log.warning("Expired idempotency keys not forgotten this time", exc_info=True)
        return 0
