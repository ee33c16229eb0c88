"""May a user see a service, run an action, see or cancel a run?"""

import time

from allauth.account import app_settings as account_settings
from allauth.account.internal.flows.login import get_authentication_records

from apps.accounts.constants import Role, TokenScope
from apps.accounts.models import Grant
from apps.accounts.permissions.access import (
    Access,
    _access,
    _in_token_limit,
    _mfa_enabled,
    _offered,
    _runs,
    _sees,
)


# --- may U see service S (on environment E)? -------------------------------------
def can_view(user, *, service, environment) -> bool:
    """May `user` see `service` on `environment`: its version there, its runs there?"""
    return _sees(_access(user), service.pk, environment.pk)


def can_view_service(user, *, service) -> bool:
    """May `user` see `service` at all (on at least one environment)?"""
    access = _access(user)
    if not access.active or (access.environments is not None and not access.environments):
        return False
    if access.sees_everything or service.pk in access.owned:
        return True
    return any(
        sid in (None, service.pk) and _in_token_limit(access, eid) for sid, eid in access.view
    )


# --- may U run action A of service S on environment E? ----------------------------
def refusal_reason(user, *, action, environment) -> str | None:
    """Why `user` may not run `action` on `environment`, or None when they may.

    A page still asks an environment that requires two-factor authentication for a
    recent confirmation (`reauthentication_reason`) before it launches.
    """
    return _run_refusal(user, action, environment, explain=True)


def can_run(user, *, action, environment) -> bool:
    """May `user` run `action` on `environment`? (Whether to draw its button.)"""
    return _run_refusal(user, action, environment, explain=False) is None


def _run_refusal(user, action, environment, *, explain: bool) -> str | None:
    if not (user is not None and user.is_authenticated and user.is_active):
        return "Sign in to run actions."
    access = _access(user)
    if access.role == Role.AUDITOR:
        return "Auditors can read everything but run nothing."
    if not _offered(action, environment):
        return f"{action.label} is not offered on {environment.name}."
    token = access.token
    if token is not None:
        if not token.has_scope(TokenScope.RUN):
            return "This API token has no run scope: it may only read."
        if not _in_token_limit(access, environment.pk):
            return f"This API token is not limited to {environment.name}: it may not run there."
        if environment.require_mfa and access.environments is None:
            return (
                f"{environment.name} requires two-factor authentication: through the API, "
                f"use a token limited to {environment.name}."
            )
    if not _runs(access, action.service_id, environment.pk):
        if not explain:
            return "No grant."
        service = action.service
        elsewhere = _run_environment_names(access, service.pk, but=environment.pk)
        hint = (
            f" Your teams may run it on {', '.join(elsewhere)} only."
            if elsewhere
            else " Ops can grant it to your team."
        )
        return f"No grant of your teams lets you run {service.name} on {environment.name}.{hint}"
    if environment.require_mfa and token is None and not _mfa_enabled(user):
        return mfa_setup_reason(environment)
    return None


def mfa_setup_reason(environment) -> str:
    """The refusal of a user with the right grant but no authenticator app yet."""
    return (
        f"{environment.name} requires two-factor authentication: set up an authenticator "
        "app on your profile page first."
    )


def _run_environment_names(access: Access, service_id, *, but) -> list[str]:
    ids = {eid for sid, eid in access.run if sid in (None, service_id) and eid != but}
    # Environments, in their order, reached through Grant's field: accounts sits below
    # the environments app and imports nothing of it.
    environment = Grant._meta.get_field("environment").related_model
    return list(environment.objects.filter(pk__in=ids).values_list("name", flat=True))


def reauthentication_reason(user, *, environment, request) -> str | None:
    """Why `user` must confirm their second factor before running on `environment` now,
    or None when they need not (or already did, recently enough)."""
    if not environment.require_mfa:
        return None
    access = _access(user)
    if access.token is not None:
        return None  # the token's own limits were checked by refusal_reason
    if request is None or not hasattr(request, "session"):
        return (
            f"{environment.name} requires a confirmation with your authenticator app, "
            "which only the portal's pages can ask for."
        )
    if not mfa_recently_confirmed(request, user):
        return (
            f"{environment.name} requires you to confirm a code of your authenticator app "
            "first; the confirmation lasts a few minutes."
        )
    return None


def mfa_recently_confirmed(request, user) -> bool:
    """Did `user` enter a code of their authenticator in this session, within
    ACCOUNT_REAUTHENTICATION_TIMEOUT seconds (at sign-in or when asked again)?"""
    if not _mfa_enabled(user):
        return False
    times = [
        record.get("at", 0)
        for record in get_authentication_records(request, user)
        if record.get("method") == "mfa"
    ]
    return bool(times) and time.time() - max(times) < account_settings.REAUTHENTICATION_TIMEOUT


# --- may U see run R? May U cancel it? ---------------------------------------------
def can_view_run(user, run) -> bool:
    return _sees(_access(user), run.service_id, run.environment_id)


def run_view_refusal(user, run) -> str | None:
    """Why `user` may not see `run` (without telling what it is), or None when they may."""
    if can_view_run(user, run):
        return None
    if not (user is not None and user.is_authenticated):
        return "Sign in to see runs."
    access = _access(user)
    if not access.active:
        return "This account is deactivated."
    if not _in_token_limit(access, run.environment_id):
        return (
            f"You may not see run #{run.pk}: this API token is limited to other environments "
            "than the run's."
        )
    return (
        f"You may not see run #{run.pk}: none of your teams has a grant on its service "
        "in its environment."
    )


def cancel_refusal_reason(user, run) -> str | None:
    """Why `user` may not cancel `run`, or None when they may."""
    if not (user is not None and user.is_authenticated and user.is_active):
        return "Sign in to cancel runs."
    access = _access(user)
    if access.role == Role.AUDITOR:
        return "Auditors can read everything but run nothing."
    if access.token is not None and not access.token.has_scope(TokenScope.RUN):
        return "This API token has no run scope: it may only read."
    mine_or_ops = access.superuser or access.role == Role.OPS or run.requested_by_id == user.pk
    if not (mine_or_ops and _sees(access, run.service_id, run.environment_id)):
        return "Only the person who started a run, or Ops, can cancel it."
    return None


def can_cancel_run(user, run) -> bool:
    return cancel_refusal_reason(user, run) is None
