"""Users and refused requests, as the audit log keeps them."""

from django.db import transaction

from apps.accounts.models import User
from apps.audit.constants import Outcome, Via
from apps.audit.services import audit_changes, audit_record, audit_snapshot

# Fields of a user whose changes say something about who may do what.
USER_AUDITED_FIELDS = (
    "username", "email", "first_name", "last_name", "role", "is_active", "is_staff",
    "is_superuser", "password",
)  # fmt: skip


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
