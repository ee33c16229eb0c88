"""Writing the audit log: one row per thing that happened, in the caller's transaction."""

import hashlib
import re
from dataclasses import dataclass

from django.db import models, transaction
from django.utils import timezone

from apps.audit import selectors
from apps.audit.chain import canonical_ip, clean_text, event_values, json_safe, row_hash
from apps.audit.constants import Outcome
from apps.audit.hooks import audit_recorded, emit_recorded
from apps.audit.models import AuditEvent, AuditHead


def audit_event_hash(event: AuditEvent) -> str:
    """SHA-256 of a row's canonical content (which includes its id and the previous hash)."""
    return row_hash(event_values(event))


def request_context(request) -> dict:
    """What an audit row keeps of the request it came from."""
    if request is None:
        return {}
    return {
        "ip": canonical_ip(request.META.get("REMOTE_ADDR")),
        "user_agent": request.META.get("HTTP_USER_AGENT", ""),
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
    actor_name: str = "",
) -> AuditEvent:
    """Append one row to the audit log, in the caller's transaction.

    Appends are serialized by locking the chain head, so concurrent writers
    never fork the chain and sequence numbers have no gaps. Values under keys
    that name a secret are masked, whatever the caller passed. `actor_name`
    names an actor who is not a user (e.g. the name tried in a failed sign-in).
    """
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(obj.pk)
        object_repr = object_repr or str(obj)
    authenticated = actor is not None and getattr(actor, "is_authenticated", False)
    context = request_context(request)
    values = {
        "actor_id": actor.pk if authenticated else None,
        "actor_name": actor.get_username() if authenticated else actor_name,
        "via": via,
        "ip": context.get("ip"),
        "user_agent": context.get("user_agent", ""),
        "verb": verb,
        "object_type": object_type,
        "object_id": object_id,
        "object_repr": object_repr,
        "service": service,
        "environment": environment,
    }
    values = {
        name: value if name in ("actor_id", "ip") else clean_text(value, name)
        for name, value in values.items()
    }
    event = _chain_append(
        values=values, details=audit_masked(json_safe(_public(details or {}))), outcome=outcome
    )
    if audit_recorded.has_listeners():
        transaction.on_commit(lambda: emit_recorded(event))
    return event


def _chain_append(*, values: dict, details: dict, outcome: str) -> AuditEvent:
    """Write the next row of the chain: the head is locked while its id and previous hash
    are taken and moved on, so concurrent writers never fork the chain.

    Inside the caller's transaction no savepoint of its own (SAVEPOINT and RELEASE were
    two of a launch's 23 statements): should a write fail, the caller's transaction is
    spoiled whole, as it would be by the exception anyway; called outside one, this is
    the transaction."""
    with transaction.atomic(savepoint=False):
        head = AuditHead.objects.select_for_update().filter(id=1).first()
        if head is None:
            head, _ = AuditHead.objects.select_for_update().get_or_create(id=1)
        event = AuditEvent(
            id=head.last_id + 1,
            created_at=timezone.now(),
            details=details,
            outcome=outcome,
            prev_hash=head.last_hash,
            **values,
        )
        event.hash = audit_event_hash(event)
        event.save(force_insert=True)
        head.last_id, head.last_hash = event.id, event.hash
        head.save(update_fields=["last_id", "last_hash"])
    return event


# --- secrets -------------------------------------------------------------------
# Names of fields and keys that hold a secret: their values never reach a row.
SECRET_NAME = re.compile(
    r"pass|secret|token|private|api_?key|access_key|ssh_key|key_hash|encrypted|cipher"
    r"|^key$|_key$",
    re.IGNORECASE,
)
SECRET_SET = "(secret)"  # noqa: S105 (a marker, not a password)
SECRET_UNSET = "(not set)"  # noqa: S105
REDACTED = "(changed, value not recorded)"
_MARKERS = {SECRET_SET, SECRET_UNSET, REDACTED}


def is_secret_name(name) -> bool:
    return bool(SECRET_NAME.search(str(name)))


def _is_masked(text: str) -> bool:
    """Empty, one of our markers, or masked already (bullets or stars)."""
    return text in _MARKERS or set(text) <= {"•", "*"}


def audit_masked(value, *, key=None):
    """`value` with the text under a secret-looking key replaced by a marker (flags and
    numbers, such as {"secret_changed": true}, say nothing of a secret and stay)."""
    if key is not None and is_secret_name(key) and isinstance(value, str) and not _is_masked(value):
        return SECRET_SET
    if isinstance(value, dict):
        return {k: audit_masked(v, key=k) for k, v in value.items()}
    if isinstance(value, list):
        # A list under a secret name (e.g. error messages about it) is masked item by item.
        return [audit_masked(v, key=key) for v in value]
    return value


@dataclass(frozen=True)
class SecretValue:
    """A secret in a snapshot: compared by digest, in memory only, never written."""

    digest: str

    @classmethod
    def of(cls, value) -> "SecretValue":
        raw = "" if value in (None, "") else repr(value)
        return cls(hashlib.sha256(raw.encode()).hexdigest() if raw else "")

    @property
    def is_set(self) -> bool:
        return bool(self.digest)


def _public(value):
    """A snapshot value as it may be written: secrets as markers."""
    if isinstance(value, SecretValue):
        return SECRET_SET if value.is_set else SECRET_UNSET
    if isinstance(value, dict):
        return {k: _public(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_public(v) for v in value]
    return value


def _hide_secrets(value, *, key=None):
    if key is not None and is_secret_name(key) and not isinstance(value, dict | list):
        return SecretValue.of(value)
    if isinstance(value, dict):
        return {k: _hide_secrets(v, key=k) for k, v in value.items()}
    if isinstance(value, list):
        return [_hide_secrets(v) for v in value]
    return value


# --- snapshots and changes ---------------------------------------------------------
def audit_snapshot(obj, *, exclude=(), secret_fields=()) -> dict:
    """A model instance's fields as JSON-safe values, for a before/after comparison.

    Foreign keys read "name (#id)", many-to-many fields a sorted list of names.
    Fields named like a secret, listed in `secret_fields` or in the model's
    `audit_secret_fields`, and keys named like a secret inside JSON fields, are
    kept only as digests in memory: a diff says that they changed, never what
    they were.
    """
    values = {}
    opts = obj._meta
    secret_fields = {*secret_fields, *getattr(obj, "audit_secret_fields", ())}
    for field in [*opts.concrete_fields, *opts.many_to_many]:
        if field.name in exclude or field.attname in exclude:
            continue
        if field.many_to_many:
            related = list(getattr(obj, field.name).all()) if obj.pk else []
            value = sorted(str(item) for item in related)
        elif field.is_relation:
            pk = getattr(obj, field.attname)
            value = None if pk is None else f"{getattr(obj, field.name)} (#{pk})"
        else:
            value = json_safe(field.value_from_object(obj))
        if field.name in secret_fields or is_secret_name(field.name):
            values[field.name] = SecretValue.of(value)
        else:
            values[field.name] = _hide_secrets(value)
    return values


def audit_changes(before: dict | None, after: dict | None) -> dict:
    """Field-by-field differences: {field: [before, after]}.

    A JSON object changed in place is compared key by key ("inventory.web.vars.port").
    A secret appears only as "(secret)", "(not set)" or "(changed, value not recorded)".
    """
    changes: dict = {}
    _diff("", before or {}, after or {}, changes)
    return changes


def _diff(prefix: str, before: dict, after: dict, out: dict) -> None:
    for name in sorted(set(before) | set(after), key=str):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        path = f"{prefix}{name}"
        if isinstance(old, dict) and isinstance(new, dict):
            _diff(f"{path}.", old, new, out)
        elif isinstance(old, SecretValue) or isinstance(new, SecretValue):
            old_set = isinstance(old, SecretValue) and old.is_set
            new_set = isinstance(new, SecretValue) and new.is_set
            out[path] = [
                SECRET_SET if old_set else SECRET_UNSET,
                REDACTED if new_set else SECRET_UNSET,
            ]
        else:
            old_public, new_public = _public(old), _public(new)
            if old_public == new_public:
                # Only a secret inside changed: say so without showing it.
                new_public = REDACTED
            out[path] = [old_public, new_public]


def audit_model_saved(
    *,
    obj: models.Model,
    before: dict | None,
    after: dict,
    acting_user,
    via: str,
    noun: str | None = None,
    request=None,
    service: str = "",
    environment: str = "",
    details: dict | None = None,
) -> AuditEvent | None:
    """Record that `obj` was created (`before` is None) or changed, with the diff.

    A change that changed nothing writes no row and returns None.
    """
    changes = audit_changes(before, after)
    if before is not None and not changes:
        return None
    return audit_record(
        actor=acting_user,
        via=via,
        verb=f"{noun or audit_noun(obj)}.{'create' if before is None else 'update'}",
        obj=obj,
        service=service,
        environment=environment,
        details={**_public(details or {}), "changes": changes},
        request=request,
    )


def audit_model_deleted(
    *,
    obj: models.Model,
    object_id: str,
    object_repr: str,
    before: dict,
    acting_user,
    via: str,
    noun: str | None = None,
    request=None,
    service: str = "",
    environment: str = "",
    details: dict | None = None,
) -> AuditEvent:
    """Record that `obj` (already deleted: hence its id and name given) is gone, and what it was."""
    return audit_record(
        actor=acting_user,
        via=via,
        verb=f"{noun or audit_noun(obj)}.delete",
        object_type=obj._meta.label_lower,
        object_id=object_id,
        object_repr=object_repr,
        service=service,
        environment=environment,
        details={**_public(details or {}), "changes": audit_changes(before, None)},
        request=request,
    )


def audit_noun(obj_or_model) -> str:
    """The first word of a model's verbs: "playbook source" -> "playbook_source"."""
    return str(obj_or_model._meta.verbose_name).replace(" ", "_")


def audit_search(*, form, cursor, actor, via: str, request=None, size: int | None = None):
    """One page of the rows a valid filter and cursor select; the search itself is recorded."""
    page = selectors.audit_event_page(
        filters=form.filters(),
        before=cursor.cleaned_data["before"],
        after=cursor.cleaned_data["after"],
        size=size or selectors.PAGE_SIZE,
    )
    audit_record(
        actor=actor,
        via=via,
        verb="audit.search",
        details={
            "filters": form.raw(),
            **{k: v for k, v in cursor.cleaned_data.items() if v is not None},
            "rows": len(page.events),
        },
        request=request,
    )
    return page
