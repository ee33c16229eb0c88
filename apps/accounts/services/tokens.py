"""API tokens: create, revoke, delete, and the record of a refused one."""

import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.accounts.constants import ALL_TOKEN_SCOPES, TokenScope
from apps.accounts.models import ApiToken, User
from apps.accounts.permissions import can_manage_tokens_of, mfa_enabled
from apps.audit.constants import Outcome, Via
from apps.audit.services import audit_changes, audit_record, audit_snapshot


def _token_snapshot(token: ApiToken) -> dict:
    values = audit_snapshot(token, exclude=("key_hash",))
    values["environments"] = sorted(token.environments.values_list("slug", flat=True))
    return values


def token_create(
    *,
    user: User,
    name: str,
    acting_user: User | None,
    via: str,
    scopes: list[str] | None = None,
    environments=(),
    expires_at: datetime.datetime | None = None,
    acting_token: ApiToken | None = None,
    request=None,
) -> tuple[ApiToken, str]:
    """Create an API token for `user`; return it with its key, which is never stored.

    Without scopes it has both (read, run); without environments, every environment
    its user may use. A token made with a token never has more than that token: no
    other scope, no other environment, no later expiry. Raises ValidationError with
    a message per field.
    """
    scopes = list(ALL_TOKEN_SCOPES) if scopes is None else list(dict.fromkeys(scopes))
    environments = list(environments)
    name = (name or "").strip()
    errors = token_owner_errors(user=user, acting_user=acting_user, environments=environments)
    _token_value_errors(name, scopes, expires_at, errors)
    if acting_token is not None:
        errors = _token_within(acting_token, scopes, environments, expires_at, errors)
    if errors:
        raise ValidationError(errors)
    key = ApiToken.new_key()
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user,
            name=name,
            key_hash=ApiToken.hash_key(key),
            prefix=key[3:11],
            scopes=scopes,
            limited=bool(environments),
            expires_at=expires_at,
            created_by=acting_user,
        )
        token.environments.set(environments)
        audit_record(
            actor=acting_user,
            via=via,
            verb="token.create",
            obj=token,
            details={
                "user": user.username,
                "name": name,
                "prefix": token.prefix,
                "changes": audit_changes(None, _token_snapshot(token)),
            },
            request=request,
        )
    return token, key


def _token_value_errors(name: str, scopes: list[str], expires_at, errors: dict) -> None:
    """Add to `errors` what is wrong with the token's own values."""
    if not name:
        errors.setdefault("name", []).append("Give the token a name, e.g. the pipeline using it.")
    elif len(name) > 100:
        errors.setdefault("name", []).append("At most 100 characters.")
    unknown = [s for s in scopes if s not in TokenScope.values]
    if not scopes or unknown:
        errors.setdefault("scopes", []).append("Choose read, run, alerts, or several.")
    if expires_at is not None and expires_at <= timezone.now():
        errors.setdefault("expires_at", []).append("The expiry must be in the future.")


def token_owner_errors(*, user: User, acting_user: User | None, environments) -> dict:
    """Why `acting_user` may not create a token of `user` limited to `environments`, as
    messages per field (none: they may). Ops decide which accounts get tokens, but never
    a superuser's, and one for an environment that requires two-factor authentication
    only for a user who has an authenticator app."""
    errors: dict[str, list[str]] = {}
    if acting_user is None:
        return errors
    if not can_manage_tokens_of(acting_user, owner=user):
        errors.setdefault("user", []).append(
            "You may not create tokens of a superuser."
            if user.is_superuser
            else "You may create tokens for yourself only."
        )
    elif (
        acting_user.pk != user.pk
        and (mfa_names := [e.name for e in environments if e.require_mfa])
        and not mfa_enabled(user)
    ):
        errors.setdefault("environments", []).append(
            f"{', '.join(mfa_names)} requires two-factor authentication, and "
            f"{user.username} has no authenticator app: no token for it."
        )
    return errors


def _token_within(parent: ApiToken, scopes, environments, expires_at, errors) -> dict:
    if extra := [s for s in scopes if not parent.has_scope(s)]:
        errors.setdefault("scopes", []).append(
            f"The token you use has no {', '.join(extra)} scope, so the new one cannot have it."
        )
    limit = set(parent.environments.values_list("pk", flat=True))
    if parent.limited and (not environments or {e.pk for e in environments} - limit):
        errors.setdefault("environments", []).append(
            "The token you use is limited to some environments: limit the new one to them too."
        )
    # A token limited to an environment that requires two-factor authentication runs
    # there without a code: only a token already limited to it may pass that on.
    elif mfa_only := [
        e.name for e in environments if e.require_mfa and not (parent.limited and e.pk in limit)
    ]:
        errors.setdefault("environments", []).append(
            f"{', '.join(mfa_only)} requires two-factor authentication: only a token "
            "limited to it may make one for it; create it on your profile page instead."
        )
    if parent.expires_at is not None and (expires_at is None or expires_at > parent.expires_at):
        errors.setdefault("expires_at", []).append(
            "The new token must expire no later than the token you use."
        )
    return errors


def token_revoke(*, token: ApiToken, acting_user, via: str, request=None) -> ApiToken:
    """Revoke a token at once (revoking it again changes nothing)."""
    if acting_user is not None and not can_manage_tokens_of(acting_user, owner=token.user):
        raise ValidationError("You may revoke your own tokens only.")
    if token.revoked_at is not None:
        return token
    with transaction.atomic():
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(
            actor=acting_user,
            via=via,
            verb="token.revoke",
            obj=token,
            details={"user": token.user.username, "name": token.name, "prefix": token.prefix},
            request=request,
        )
    return token


def token_delete(*, token: ApiToken, acting_user, via: str, request=None) -> None:
    """Delete a token (revoking keeps its record; this is for clearing old ones)."""
    with transaction.atomic():
        audit_record(
            actor=acting_user,
            via=via,
            verb="token.delete",
            obj=token,
            details={
                "user": token.user.username,
                "name": token.name,
                "prefix": token.prefix,
                "changes": audit_changes(_token_snapshot(token), None),
            },
            request=request,
        )
        token.delete()


def token_refused_record(*, token: ApiToken, reason: str, request=None) -> None:
    """Keep the use of a revoked or expired token in the audit log."""
    audit_record(
        actor=token.user,
        via=Via.API,
        verb="token.refused",
        obj=token,
        details={"reason": reason, "name": token.name, "prefix": token.prefix},
        outcome=Outcome.REFUSED,
        request=request,
    )
