"""Teams, memberships and grants: every change with its audit row, in the same transaction."""

from django.db import transaction

from apps.accounts.models import Grant, Membership, Team, User
from apps.accounts.permissions import access_forget
from apps.audit.constants import Via
from apps.audit.services import audit_changes, audit_record, audit_snapshot


def _stored(obj):
    """The row as it is in the database before `obj`'s unsaved changes (None: new)."""
    return type(obj).objects.filter(pk=obj.pk).first() if obj.pk else None


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
