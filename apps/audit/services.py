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
