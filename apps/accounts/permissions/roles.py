"""What a role brings beyond grants: reading the audit log, managing others' API tokens,
and the admin's model permissions."""

from django.contrib.auth.models import Permission

from apps.accounts.constants import Role
from apps.accounts.permissions.access import _access

# What Ops curate in the admin: every model of these apps. Elsewhere they only read.
OPS_CURATED_APPS = ("accounts", "catalog", "environments", "notifications", "schedules")
# What Ops and auditors may read in the admin: the portal's own apps, never those of
# allauth (authenticator secrets, social tokens) or Django's (sessions).
PORTAL_APPS = (
    "accounts", "audit", "catalog", "environments", "incidents", "notifications", "runs",
    "schedules", "workers",
)  # fmt: skip


# --- may U read the audit log? ------------------------------------------------------
def can_read_audit(user) -> bool:
    """May `user` read the audit log (pages, export, API)? Auditors, Ops and superusers."""
    access = _access(user)
    return access.active and (access.superuser or access.role in (Role.AUDITOR, Role.OPS))


# --- may U see the workers and their queues? -----------------------------------------
def can_see_workers(user) -> bool:
    """May `user` see the workers page and API (host names, queues, versions)? Ops,
    auditors and superusers, as for the audit log; developers see only, on the
    environments they may see, whether a live worker takes their runs."""
    return can_read_audit(user)


# --- API tokens --------------------------------------------------------------------
def token_scope_refusal(user, *, scope: str) -> str | None:
    """Why the API token of this request may not be used for `scope`, or None."""
    token = getattr(user, "api_token", None)
    if token is None or token.has_scope(scope):
        return None
    return f"This API token has no {scope} scope."


def can_manage_tokens_of(user, *, owner) -> bool:
    """May `user` create and revoke API tokens of `owner`? Their own, or anyone's for Ops
    but a superuser's (a token of theirs would let Ops act as them)."""
    if not (user is not None and user.is_authenticated and user.is_active):
        return False
    if user.pk == owner.pk or user.is_superuser:
        return True
    return user.role == Role.OPS and not owner.is_superuser


# --- the admin ---------------------------------------------------------------------
def role_permissions(user) -> set[str]:
    """Django model permissions ("app.codename") a role brings in the admin: Ops add,
    change and delete what they curate and view the rest of the portal's apps; auditors
    view the portal's apps."""
    if not (user is not None and user.is_active and user.is_staff):
        return set()
    if user.role not in (Role.OPS, Role.AUDITOR):
        return set()
    cached = getattr(user, "_pushbutton_role_permissions", None)
    if cached is not None:
        return cached
    perms = set()
    for app_label, codename in Permission.objects.filter(
        content_type__app_label__in=PORTAL_APPS
    ).values_list("content_type__app_label", "codename"):
        if codename.startswith("view_") or (
            user.role == Role.OPS and app_label in OPS_CURATED_APPS
        ):
            perms.add(f"{app_label}.{codename}")
    user._pushbutton_role_permissions = perms
    return perms
