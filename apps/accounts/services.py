"""Teams, memberships, grants, API tokens and refusals: every change with its audit row,
in the same transaction."""

import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.accounts.constants import ALL_TOKEN_SCOPES, TokenScope
from apps.accounts.models import ApiToken, Grant, Membership, Team, User
from apps.accounts.permissions import access_forget, can_manage_tokens_of, mfa_enabled
from apps.audit.models import Outcome, Via
from apps.audit.services import audit_changes, audit_record, audit_snapshot

# Fields of a user whose changes say something about who may do what.
USER_AUDITED_FIELDS = (
    "username", "email", "first_name", "last_name", "role", "is_active", "is_staff",
    "is_superuser", "password",
)  # fmt: skip


def _stored(obj):
    """The row as it is in the database before `obj`'s unsaved changes (None: new)."""
    return type(obj).objects.filter(pk=obj.pk).first() if obj.pk else None


# --- refusals ----------------------------------------------------------------------
def refusal_record(
    *, user, reason: str, request=None, via: str = Via.WEB, obj=None, details: dict | None = None
) -> None:
    """Keep a refused request in the audit log: who, what they asked for, and why not."""
    path = request.get_full_path()[:300] if request is not None else ""
    method = request.method if request is not None else ""
    audit_record(
        actor=user,
        via=via,
        verb="access.refused",
        obj=obj,
        details={"reason": reason, "method": method, "path": path, **(details or {})},
        outcome=Outcome.REFUSED,
        request=request,
    )


# --- teams, memberships, grants -------------------------------------------------------
def team_save(*, team: Team, acting_user, via: str, request=None) -> Team:
    """Create or change a team (not its members or grants)."""
    stored = _stored(team)
    before = audit_snapshot(stored, exclude=("members",)) if stored else None
    with transaction.atomic():
        team.full_clean()
        team.save()
        audit_record(
            actor=acting_user,
            via=via,
            verb="team.update" if stored else "team.create",
            obj=team,
            details={"changes": audit_changes(before, audit_snapshot(team, exclude=("members",)))},
            request=request,
        )
    return team


def team_delete(*, team: Team, acting_user, via: str, request=None) -> None:
    """Delete a team with its memberships and grants; the audit log keeps what they were."""
    with transaction.atomic():
        audit_record(
            actor=acting_user,
            via=via,
            verb="team.delete",
            obj=team,
            details={
                "changes": audit_changes(audit_snapshot(team, exclude=("members",)), None),
                "members": sorted(team.members.values_list("username", flat=True)),
                "grants": [str(grant) for grant in team.grants.select_related("service")],
            },
            request=request,
        )
        team.delete()


def _membership_details(membership: Membership) -> dict:
    return {"team": membership.team.slug, "user": membership.user.username}


def membership_save(*, membership: Membership, acting_user, via: str, request=None) -> Membership:
    """Put a user in a team (or change which user or team a membership row is about)."""
    stored = _stored(membership)
    before = audit_snapshot(stored) if stored else None
    with transaction.atomic():
        membership.full_clean()
        membership.save()
        audit_record(
            actor=acting_user,
            via=via,
            verb="membership.update" if stored else "membership.create",
            obj=membership,
            details={
                **_membership_details(membership),
                "changes": audit_changes(before, audit_snapshot(membership)),
            },
            request=request,
        )
    access_forget(membership.user)
    return membership


def membership_delete(*, membership: Membership, acting_user, via: str, request=None) -> None:
    with transaction.atomic():
        audit_record(
            actor=acting_user,
            via=via,
            verb="membership.delete",
            obj=membership,
            details={
                **_membership_details(membership),
                "changes": audit_changes(audit_snapshot(membership), None),
            },
            request=request,
        )
        membership.delete()
    access_forget(membership.user)


def _grant_details(grant: Grant) -> dict:
    return {
        "team": grant.team.slug,
        "service": grant.service.slug if grant.service_id else "(every service)",
        "environment": grant.environment.slug,
        "right": grant.right,
    }


def grant_save(*, grant: Grant, acting_user, via: str, request=None) -> Grant:
    """Create or change a grant."""
    stored = _stored(grant)
    before = audit_snapshot(stored) if stored else None
    with transaction.atomic():
        grant.full_clean()
        grant.save()
        audit_record(
            actor=acting_user,
            via=via,
            verb="grant.update" if stored else "grant.create",
            obj=grant,
            service=grant.service.slug if grant.service_id else "",
            environment=grant.environment.slug,
            details={
                **_grant_details(grant),
                "changes": audit_changes(before, audit_snapshot(grant)),
            },
            request=request,
        )
    return grant


def grant_delete(*, grant: Grant, acting_user, via: str, request=None) -> None:
    with transaction.atomic():
        audit_record(
            actor=acting_user,
            via=via,
            verb="grant.delete",
            obj=grant,
            service=grant.service.slug if grant.service_id else "",
            environment=grant.environment.slug,
            details={
                **_grant_details(grant),
                "changes": audit_changes(audit_snapshot(grant), None),
            },
            request=request,
        )
        grant.delete()


def teams_sync_from_sso(*, user: User, groups: list[str], request=None) -> dict[str, list[str]]:
    """Make `user` a member of exactly those SSO-mapped teams whose group is in `groups`.

    Teams without an SSO group are left alone. Returns the slugs of the teams joined
    and left.
    """
    wanted = set(Team.objects.exclude(sso_group="").filter(sso_group__in=groups))
    current = {
        m.team: m
        for m in Membership.objects.filter(user=user)
        .exclude(team__sso_group="")
        .select_related("team", "user")
    }
    joined, left = [], []
    with transaction.atomic():
        for team in sorted(wanted - set(current), key=lambda t: t.slug):
            membership_save(
                membership=Membership(team=team, user=user),
                acting_user=None,
                via=Via.SYSTEM,
                request=request,
            )
            joined.append(team.slug)
        for team in sorted(set(current) - wanted, key=lambda t: t.slug):
            membership_delete(
                membership=current[team], acting_user=None, via=Via.SYSTEM, request=request
            )
            left.append(team.slug)
    access_forget(user)
    return {"joined": joined, "left": left}


# --- users -------------------------------------------------------------------------------
def user_audit_saved(*, user: User, before: dict | None, acting_user, via: str, request=None):
    """Record a user created or changed (in the admin): role, staff, superuser, active…"""
    changes = {
        name: change
        for name, change in audit_changes(before, audit_snapshot(user)).items()
        if name in USER_AUDITED_FIELDS
    }
    if before is not None and not changes:
        return
    audit_record(
        actor=acting_user,
        via=via,
        verb="user.update" if before is not None else "user.create",
        obj=user,
        details={"changes": changes},
        request=request,
    )


def user_delete(*, user: User, acting_user, via: str, request=None) -> None:
    """Delete a user (their tokens and memberships go with them); the audit log keeps who
    they were and what they belonged to."""
    with transaction.atomic():
        audit_record(
            actor=acting_user,
            via=via,
            verb="user.delete",
            obj=user,
            details={
                "changes": {
                    name: change
                    for name, change in audit_changes(audit_snapshot(user), None).items()
                    if name in USER_AUDITED_FIELDS
                },
                "teams": sorted(user.teams.values_list("slug", flat=True)),
                # (not "tokens": the audit log masks what a key so named holds)
                "api_prefixes": sorted(user.tokens.values_list("prefix", flat=True)),
            },
            request=request,
        )
        user.delete()


# --- API tokens ----------------------------------------------------------------------------
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
    errors = token_owner_errors(user=user, acting_user=acting_user, environments=environments)
    name = (name or "").strip()
    if not name:
        errors.setdefault("name", []).append("Give the token a name, e.g. the pipeline using it.")
    elif len(name) > 100:
        errors.setdefault("name", []).append("At most 100 characters.")
    unknown = [s for s in scopes if s not in TokenScope.values]
    if not scopes or unknown:
        errors.setdefault("scopes", []).append("Choose read, run or both.")
    if expires_at is not None and expires_at <= timezone.now():
        errors.setdefault("expires_at", []).append("The expiry must be in the future.")
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
