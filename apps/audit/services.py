import hashlib
import json

from django.db import transaction
from django.utils import timezone

from apps.audit.models import AuditEvent, AuditHead, Outcome

HASHED_FIELDS = (
    "created_at", "actor_id", "actor_name", "via", "ip", "user_agent", "verb",
    "object_type", "object_id", "object_repr", "service", "environment", "details",
    "outcome", "prev_hash",
)  # fmt: skip


def audit_event_hash(event: AuditEvent) -> str:
    """SHA-256 of a row's canonical content (which includes the previous hash)."""
    content = {name: getattr(event, name) for name in HASHED_FIELDS}
    content["created_at"] = event.created_at.isoformat()
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def request_context(request) -> dict:
    """What an audit row keeps of the request it came from."""
    if request is None:
        return {}
    return {
        "ip": request.META.get("REMOTE_ADDR") or None,
        "user_agent": request.META.get("HTTP_USER_AGENT", "")[:300],
    }


def audit_record(
    *,
    actor,
    via: str,
    verb: str,
    obj=None,
    object_type: str = "",
    object_id: str = "",
    object_repr: str = "",
    service: str = "",
    environment: str = "",
    details: dict | None = None,
    outcome: str = Outcome.SUCCESS,
    request=None,
) -> AuditEvent:
    """Append one row to the audit log, in the caller's transaction.

    Appends are serialized by locking the chain head, so concurrent writers
    never fork the chain.
    """
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(obj.pk)
        object_repr = object_repr or str(obj)[:200]
    authenticated = actor is not None and getattr(actor, "is_authenticated", False)
    with transaction.atomic():
        head, _ = AuditHead.objects.select_for_update().get_or_create(id=1)
        event = AuditEvent(
            created_at=timezone.now(),
            actor_id=actor.pk if authenticated else None,
            actor_name=actor.get_username() if authenticated else "",
            via=via,
            verb=verb,
            object_type=object_type,
            object_id=object_id,
            object_repr=object_repr,
            service=service,
            environment=environment,
            details=details or {},
            outcome=outcome,
            prev_hash=head.last_hash,
            **request_context(request),
        )
        event.hash = audit_event_hash(event)
        event.save()
        head.last_hash = event.hash
        head.save(update_fields=["last_hash"])
    return event


SECRET_FIELD_WORDS = ("password", "secret", "key_hash", "private_key", "passphrase", "token")
REDACTED = "(changed, value not recorded)"


def audit_snapshot(obj, *, exclude=()) -> dict:
    """A model instance's fields (many-to-many as sorted ids) as JSON-safe values.

    Fields whose names say they hold a secret are never copied, only noted.
    """
    values = {}
    opts = obj._meta
    for field in [*opts.concrete_fields, *opts.many_to_many]:
        name = field.attname if field.concrete and not field.many_to_many else field.name
        if field.name in exclude or name in exclude:
            continue
        if any(word in field.name for word in SECRET_FIELD_WORDS):
            values[field.name] = "(secret)"
            continue
        if field.many_to_many:
            related = getattr(obj, field.name).values_list("pk", flat=True) if obj.pk else []
            values[field.name] = sorted(related)
        else:
            value = getattr(obj, name)
            values[name] = (
                value
                if isinstance(value, bool | int | float | str | type(None) | list | dict)
                else str(value)
            )
    return values


def audit_changes(before: dict | None, after: dict | None) -> dict:
    """Field-by-field differences: {field: [before, after]}; secrets only as "changed"."""
    before, after = before or {}, after or {}
    changes = {}
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old != new:
            changes[name] = [REDACTED, REDACTED] if "(secret)" in (old, new) else [old, new]
    return changes
