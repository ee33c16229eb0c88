"""Credentials: setting their secret (encrypted, checked, never shown again), auditing
every change, and re-encrypting them when the key rotates. Locks: taking and releasing
them, permission checked and audited here."""

import base64
import hashlib

from cryptography.hazmat.primitives import serialization
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.accounts.permissions import lock_refusal_reason, unlock_refusal_reason
from apps.audit.constants import Outcome
from apps.audit.services import audit_record
from apps.catalog.parameters import ANSIBLE_MAGIC_VARS, NAME
from apps.environments.constants import CredentialKind
from apps.environments.models import Credential, EnvironmentLock
from apps.environments.selectors import when
from portal.crypto import decrypt_text, encrypt_text, token_is_current, token_rotate

MIN_SECRET_CHARS = 3  # what the output masker masks (apps/runs/events.py)
MAX_KEY_CHARS = 16_000
MAX_SECRET_CHARS = 4_000


def _ssh_key_fingerprint(key: str, passphrase: str) -> str:
    """The public key's SHA256 fingerprint (as `ssh-keygen -l` prints it), or a
    ValidationError saying what is wrong with the key or its passphrase."""
    password = passphrase.encode() if passphrase else None
    data = key.encode()
    try:
        if b"BEGIN OPENSSH PRIVATE KEY" in data:
            private = serialization.load_ssh_private_key(data, password=password)
        else:
            private = serialization.load_pem_private_key(data, password=password)
    except TypeError as exc:
        if passphrase:
            raise ValidationError(
                {"passphrase": "This key has no passphrase: leave the passphrase empty."}
            ) from exc
        raise ValidationError(
            {"passphrase": "This key is protected by a passphrase: enter it."}
        ) from exc
    except ValueError as exc:
        if passphrase and "BEGIN" in key:
            raise ValidationError(
                {"passphrase": "The passphrase does not open this key (or the key is damaged)."}
            ) from exc
        raise ValidationError(
            {"value": "Not an SSH private key: paste the whole key file, BEGIN and END lines too."}
        ) from exc
    except Exception as exc:  # cryptography's UnsupportedAlgorithm and friends
        raise ValidationError({"value": f"This SSH key cannot be used: {exc}"}) from exc
    try:
        public = private.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
    except (ValueError, TypeError) as exc:
        raise ValidationError({"value": "This kind of key cannot be used with SSH."}) from exc
    blob = base64.b64decode(public.split()[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"{public.split()[0].decode()} SHA256:{digest}"


def credential_variable_errors(kind: str, variable: str) -> list[str]:
    if kind != CredentialKind.SECRET_VARIABLE:
        return ["Only secret variables have a variable name."] if variable else []
    if not variable:
        return ["A secret variable needs the name the playbook reads it as."]
    if not NAME.fullmatch(variable):
        return ["Lower-case letters, digits and '_', starting with a letter or '_'."]
    if variable in ANSIBLE_MAGIC_VARS:
        return [f"{variable!r} is one of Ansible's own variables."]
    if variable.startswith("pushbutton_"):
        return ["Names starting with 'pushbutton_' are the portal's own."]
    return []


def credential_secret_set(*, credential: Credential, value: str, passphrase: str = "") -> None:
    """Check `value` (and an SSH key's passphrase) for the credential's kind, then keep
    them encrypted on the instance (not saved). Raises ValidationError per field."""
    if not value:
        raise ValidationError({"value": "Enter the secret value."})
    if len(value) < MIN_SECRET_CHARS:
        # Shorter values would be masked everywhere they happen to appear in the output.
        raise ValidationError({"value": f"At least {MIN_SECRET_CHARS} characters."})
    if passphrase and credential.kind != CredentialKind.SSH_KEY:
        raise ValidationError({"passphrase": "Only SSH keys have a passphrase."})
    fingerprint = ""
    if credential.kind == CredentialKind.SSH_KEY:
        value = value.replace("\r\n", "\n").strip() + "\n"  # ssh-add wants the final newline
        if len(value) > MAX_KEY_CHARS:
            raise ValidationError({"value": f"At most {MAX_KEY_CHARS} characters."})
        if "\n" in passphrase or "\r" in passphrase:
            raise ValidationError({"passphrase": "A passphrase cannot contain a line break."})
        fingerprint = _ssh_key_fingerprint(value, passphrase)
    else:
        if len(value) > MAX_SECRET_CHARS:
            raise ValidationError({"value": f"At most {MAX_SECRET_CHARS} characters."})
        if credential.kind != CredentialKind.SECRET_VARIABLE and ("\n" in value or "\r" in value):
            # It is typed at a password prompt: a line break would end it early.
            raise ValidationError({"value": "A password cannot contain a line break."})
    credential.secret_encrypted = encrypt_text(value)
    credential.passphrase_encrypted = encrypt_text(passphrase) if passphrase else ""
    credential.fingerprint = fingerprint
    credential.secret_set_at = timezone.now()


def _details(credential: Credential, *, secret_changed: bool) -> dict:
    # Names and attachments only: the value is never copied anywhere.
    return {
        "name": credential.name,
        "kind": credential.kind,
        "variable": credential.variable,
        "fingerprint": credential.fingerprint,
        "environments": sorted(credential.environments.values_list("slug", flat=True)),
        "actions": sorted(
            f"{service}/{action}"
            for service, action in credential.actions.values_list("service__slug", "slug")
        ),
        "secret_changed": secret_changed,
    }


def credential_audit_saved(
    *, credential: Credential, created: bool, secret_changed: bool, acting_user, via, request=None
) -> None:
    """Record a credential's creation or change (after its attachments are saved)."""
    audit_record(
        actor=acting_user,
        via=via,
        verb="credential.create" if created else "credential.update",
        obj=credential,
        details=_details(credential, secret_changed=secret_changed),
        request=request,
    )


def credential_create(
    *,
    name: str,
    kind: str,
    value: str,
    passphrase: str = "",
    variable: str = "",
    description: str = "",
    environments=(),
    actions=(),
    acting_user,
    via: str,
) -> Credential:
    """Create a credential with its encrypted secret, attached to `environments`."""
    credential = Credential(name=name, kind=kind, variable=variable, description=description)
    if errors := credential_variable_errors(kind, variable):
        raise ValidationError({"variable": errors})
    credential_secret_set(credential=credential, value=value, passphrase=passphrase)
    credential.full_clean(exclude=["environments", "actions"])
    with transaction.atomic():
        credential.save()
        credential.environments.set(environments)
        credential.actions.set(actions)
        credential_audit_saved(
            credential=credential,
            created=True,
            secret_changed=True,
            acting_user=acting_user,
            via=via,
        )
    return credential


def credential_delete(*, credential: Credential, acting_user, via: str, request=None) -> None:
    with transaction.atomic():
        audit_record(
            actor=acting_user,
            via=via,
            verb="credential.delete",
            obj=credential,
            details=_details(credential, secret_changed=False),
            request=request,
        )
        credential.delete()


def credential_values(credential: Credential) -> dict:
    """What the worker needs of a credential, decrypted (for the run's encrypted copy)."""
    return {
        "name": credential.name,
        "kind": credential.kind,
        "variable": credential.variable,
        "secret": decrypt_text(credential.secret_encrypted),
        "passphrase": decrypt_text(credential.passphrase_encrypted)
        if credential.passphrase_encrypted
        else "",
    }


def credentials_rotate_key() -> int:
    """Re-encrypt every credential with the current (first) key; returns how many changed.

    Raises portal.crypto.DecryptionError, naming the credential, when one cannot be
    opened with any configured key (nothing is changed then).
    """
    rotated = 0
    with transaction.atomic():
        for credential in Credential.objects.select_for_update().order_by("pk"):
            fields = []
            for field in ("secret_encrypted", "passphrase_encrypted"):
                token = getattr(credential, field)
                if token and not token_is_current(token):
                    try:
                        setattr(credential, field, token_rotate(token))
                    except ValueError as exc:
                        raise type(exc)(f"Credential {credential.name!r}: {exc}") from exc
                    fields.append(field)
            if fields:
                credential.save(update_fields=fields)
                rotated += 1
    return rotated


# --- locks ---------------------------------------------------------------------------
class LockRefused(Exception):
    """A lock or unlock the portal will not do; `status` is the HTTP status that says why."""

    def __init__(self, reason: str, *, status: int = 403):
        super().__init__(reason)
        self.reason = reason
        self.status = status


def _lock_details(lock: EnvironmentLock) -> dict:
    return {
        "reason": lock.reason,
        "service": lock.service.slug if lock.service_id else None,
        "expires_at": lock.expires_at.isoformat() if lock.expires_at else None,
        "locked_by": lock.created_by_name,
    }


def _lock_refused(*, verb, user, via, request, environment, service, reason, details=None):
    audit_record(
        actor=user,
        via=via,
        verb=verb,
        object_type="environments.environment",
        object_id=str(environment.pk),
        object_repr=str(environment),
        service=service.slug if service else "",
        environment=environment.slug,
        details={"reason": reason, **(details or {})},
        outcome=Outcome.REFUSED,
        request=request,
    )
    raise LockRefused(reason)


def lock_create(
    *,
    user,
    environment,
    service=None,
    reason: str,
    expires_at,
    via: str,
    request=None,
) -> EnvironmentLock:
    """Lock `environment` (or only `service` there) until `expires_at`: no run starts
    there, from the pages, the API or by itself, until it expires or is released.

    Raises LockRefused (403, recorded in the audit log) when `user` may not, and
    ValidationError per field (reason, expires_at) for bad input.
    """
    if refusal := lock_refusal_reason(user, environment=environment, service=service):
        _lock_refused(
            verb="environment.lock_refused",
            user=user,
            via=via,
            request=request,
            environment=environment,
            service=service,
            reason=refusal,
        )
    lock = EnvironmentLock(
        environment=environment,
        service=service,
        reason=(reason or "").strip(),
        expires_at=expires_at,
        created_by=user,
        created_by_name=user.get_username(),
    )
    lock.full_clean()
    with transaction.atomic():
        lock.save()
        audit_record(
            actor=user,
            via=via,
            verb="environment.locked",
            obj=lock,
            service=service.slug if service else "",
            environment=environment.slug,
            details=_lock_details(lock),
            request=request,
        )
    return lock


def lock_release(*, lock: EnvironmentLock, user, via: str, request=None) -> EnvironmentLock:
    """Release `lock` (its owner or Ops): runs may start again, unless another lock or a
    freeze stops them. Raises LockRefused: 403 when `user` may not (recorded), 409 when
    it was already released or has expired."""
    if refusal := unlock_refusal_reason(user, lock):
        _lock_refused(
            verb="environment.unlock_refused",
            user=user,
            via=via,
            request=request,
            environment=lock.environment,
            service=lock.service,
            reason=refusal,
            details={"lock": lock.pk},
        )
    with transaction.atomic():
        # Locked, so two releases at once record one unlock.
        current = EnvironmentLock.objects.select_for_update().get(pk=lock.pk)
        now = timezone.now()
        if current.released_at is not None:
            raise LockRefused(
                f"This lock was already released by {current.released_by_name} "
                f"on {when(current.released_at)}.",
                status=409,
            )
        if current.expires_at <= now:
            raise LockRefused(
                f"This lock expired on {when(current.expires_at)}: there is nothing to unlock.",
                status=409,
            )
        current.released_at = now
        current.released_by_name = user.get_username()
        current.save(update_fields=["released_at", "released_by_name"])
        audit_record(
            actor=user,
            via=via,
            verb="environment.unlocked",
            obj=current,
            service=current.service.slug if current.service_id else "",
            environment=current.environment.slug,
            details={**_lock_details(current), "lock": current.pk},
            request=request,
        )
    lock.released_at, lock.released_by_name = current.released_at, current.released_by_name
    return lock
