"""Who may do what: one function per question, used by pages, the API, services and list queries.

The rules, all of them here:

- Superusers may do everything. Ops and auditors see every service, environment and
  run. Auditors run and cancel nothing, and change nothing. Ops cancel any run and
  curate the catalog in the admin (`role_permissions`); they run only through grants,
  like everyone else.
- Anyone runs an action on an environment only through a `run` grant of one of their
  teams on that environment, for that service or for every service. A grant on one
  environment never implies another: test or QA never implies production.
- A service is seen on an environment through a `view` or `run` grant there, or by the
  members of the team that owns it (on every environment). Its runs are seen with it.
- Through the API the token narrows its user's rights: its scopes and its
  environments. A token never grants more than its user has.
- An environment that requires two-factor authentication: in the portal, the user has
  an authenticator app and confirmed a code in the last few minutes; through the API,
  the token is limited to that environment (so it was made for it on purpose): made on
  the profile page after a recent confirmation, by Ops for a user who has an
  authenticator app, or with a token already limited to it.
- Ops create and revoke anyone's API tokens (e.g. for service accounts) but a superuser's.

What a user may do is read once per user object (that is, once per request) and kept on it.
"""

import time
from dataclasses import dataclass

from allauth.account import app_settings as account_settings
from allauth.account.internal.flows.login import get_authentication_records
from allauth.mfa.models import Authenticator
from allauth.mfa.utils import is_mfa_enabled
from django.contrib.auth.models import Permission
from django.db.models import Q

from apps.accounts.constants import Right, Role, TokenScope
from apps.accounts.models import Grant
from apps.catalog.models import Service
from apps.environments.models import Environment

# What Ops curate in the admin: every model of these apps. Elsewhere they only read.
OPS_CURATED_APPS = ("accounts", "catalog", "environments")
# What Ops and auditors may read in the admin: the portal's own apps, never those of
# allauth (authenticator secrets, social tokens) or Django's (sessions).
PORTAL_APPS = ("accounts", "audit", "catalog", "environments", "runs")


@dataclass(frozen=True)
class Access:
    """Everything the permission questions need to know about one user, read at once."""

    active: bool = False
    superuser: bool = False
    role: str = ""
    sees_everything: bool = False
    # (service id, or None for every service; environment id)
    view: frozenset = frozenset()
    run: frozenset = frozenset()
    owned: frozenset = frozenset()
    # The API token the request came with, and the environments it is limited to.
    token: object = None
    environments: frozenset | None = None


NOBODY = Access()


def _access(user) -> Access:
    if not (user is not None and user.is_authenticated and user.is_active):
        return NOBODY
    cached = getattr(user, "_pushbutton_access", None)
    token = getattr(user, "api_token", None)
    if cached is not None and cached.token is token:
        return cached
    view, run = set(), set()
    for service_id, environment_id, right in Grant.objects.filter(
        team__memberships__user=user
    ).values_list("service_id", "environment_id", "right"):
        view.add((service_id, environment_id))
        if right == Right.RUN:
            run.add((service_id, environment_id))
    access = Access(
        active=True,
        superuser=user.is_superuser,
        role=user.role,
        sees_everything=user.is_superuser or user.role in (Role.OPS, Role.AUDITOR),
        view=frozenset(view),
        run=frozenset(run),
        owned=frozenset(
            Service.objects.filter(team__memberships__user=user).values_list("pk", flat=True)
        ),
        token=token,
        environments=(
            frozenset(token.environments.values_list("pk", flat=True))
            if token is not None and token.limited
            else None
        ),
    )
    user._pushbutton_access = access
    return access


def access_forget(user) -> None:
    """Read the user's rights again at the next question (after their grants changed)."""
    if hasattr(user, "_pushbutton_access"):
        del user._pushbutton_access


def _in_token_limit(access: Access, environment_id) -> bool:
    return access.environments is None or environment_id in access.environments


def _sees(access: Access, service_id, environment_id) -> bool:
    if not access.active or not _in_token_limit(access, environment_id):
        return False
    return (
        access.sees_everything
        or service_id in access.owned
        or (service_id, environment_id) in access.view
        or (None, environment_id) in access.view
    )


def _runs(access: Access, service_id, environment_id) -> bool:
    if not access.active or access.role == Role.AUDITOR:
        return False
    if not _in_token_limit(access, environment_id):
        return False
    return (
        access.superuser
        or (service_id, environment_id) in access.run
        or (None, environment_id) in access.run
    )


def _offered(action, environment) -> bool:
    # .all() uses a prefetched list when the caller has one (the catalog does).
    return any(env.pk == environment.pk for env in action.environments.all())


def _mfa_enabled(user) -> bool:
    """Has the user an authenticator app? (Asked once per user object.)"""
    if not hasattr(user, "_pushbutton_mfa"):
        user._pushbutton_mfa = is_mfa_enabled(user, [Authenticator.Type.TOTP])
    return user._pushbutton_mfa


def mfa_enabled(user) -> bool:
    """Has `user` an authenticator app (for two-factor authentication)?"""
    return _mfa_enabled(user)


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
    return list(Environment.objects.filter(pk__in=ids).values_list("name", flat=True))


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


# --- may U read the audit log? ------------------------------------------------------
def can_read_audit(user) -> bool:
    """May `user` read the audit log (pages, export, API)? Auditors, Ops and superusers."""
    access = _access(user)
    return access.active and (access.superuser or access.role in (Role.AUDITOR, Role.OPS))


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


# --- list queries ------------------------------------------------------------------
_NONE = Q(pk__in=[])


def _pairs_q(access: Access, *, service: str, environment: str) -> Q:
    """Rows whose (service, environment) the user sees, as one filter."""
    if not access.active:
        return _NONE
    limit = access.environments
    if limit is not None and not limit:
        return _NONE
    in_limit = Q() if limit is None else Q(**{f"{environment}__in": limit})
    if access.sees_everything:
        return in_limit
    q = _NONE
    if access.owned:
        q |= Q(**{f"{service}__in": access.owned}) & in_limit
    every_service = {eid for sid, eid in access.view if sid is None}
    if every_service:
        q |= Q(**{f"{environment}__in": every_service}) & in_limit
    for sid, eid in access.view:
        if sid is not None and eid not in every_service and _in_token_limit(access, eid):
            q |= Q(**{service: sid, environment: eid})
    return q


def run_filter(user) -> Q:
    """The runs `user` may see, as a filter on Run."""
    return _pairs_q(_access(user), service="service_id", environment="environment_id")


def service_filter(user) -> Q:
    """The services `user` may see (on at least one environment), as a filter on Service."""
    access = _access(user)
    if not access.active or (access.environments is not None and not access.environments):
        return _NONE
    if access.sees_everything:
        return Q()
    q = Q(pk__in=access.owned) if access.owned else _NONE
    pairs = [(sid, eid) for sid, eid in access.view if _in_token_limit(access, eid)]
    if any(sid is None for sid, _ in pairs):
        return Q()
    ids = {sid for sid, _ in pairs}
    return q | Q(pk__in=ids) if ids else q


def environment_filter(user) -> Q:
    """The environments on which `user` may see something, as a filter on Environment."""
    access = _access(user)
    if not access.active:
        return _NONE
    limit = Q() if access.environments is None else Q(pk__in=access.environments)
    if access.sees_everything or access.owned:
        return limit
    ids = {eid for _, eid in access.view}
    return Q(pk__in=ids) & limit if ids else _NONE


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


# --- locks and freeze windows ------------------------------------------------------
def _acts_in(user, environment) -> tuple[Access | None, str | None]:
    """The user's access for a write on `environment` (a lock, an override), or why not."""
    if not (user is not None and user.is_authenticated and user.is_active):
        return None, "Sign in first."
    access = _access(user)
    if access.role == Role.AUDITOR:
        return None, "Auditors can read everything but change nothing."
    if access.token is not None and not access.token.has_scope(TokenScope.RUN):
        return None, "This API token has no run scope: it may only read."
    if not _in_token_limit(access, environment.pk):
        return None, f"This API token is not limited to {environment.name}: it may not act there."
    return access, None


def lock_refusal_reason(user, *, environment, service=None) -> str | None:
    """Why `user` may not lock `environment` (or only `service` there), or None.

    Ops lock anything. Others lock a service where their teams may run it, and a
    whole environment only where their teams may run every service.
    """
    access, reason = _acts_in(user, environment)
    if access is None:
        return reason
    if access.superuser or access.role == Role.OPS:
        return None
    if service is not None:
        if _runs(access, service.pk, environment.pk):
            return None
        return f"Only Ops or a team that may run {service.name} on {environment.name} can lock it."
    if (None, environment.pk) in access.run:
        return None
    return (
        f"Only Ops or a team that may run every service on {environment.name} can lock all of "
        f"{environment.name}: lock one of your services there instead."
    )


def can_lock(user, *, environment, service=None) -> bool:
    """May `user` lock `environment`, or only `service` on it?"""
    return lock_refusal_reason(user, environment=environment, service=service) is None


def unlock_refusal_reason(user, lock) -> str | None:
    """Why `user` may not release `lock`, or None: its owner or Ops may."""
    access, reason = _acts_in(user, lock.environment)
    if access is None:
        return reason
    if access.superuser or access.role == Role.OPS or lock.created_by_id == user.pk:
        return None
    return f"Only {lock.created_by_name}, who locked it, or Ops can unlock it."


def can_unlock(user, lock) -> bool:
    """May `user` release `lock`? Its owner or Ops."""
    return unlock_refusal_reason(user, lock) is None


def can_override_freeze(user, *, environment) -> bool:
    """May `user` run on `environment` during a freeze window, in an emergency (with a
    reason)? Members of the environment's emergency teams (Environment.emergency_teams,
    set by Ops in the admin) and superusers. It passes the freeze only: running still
    needs a run grant (`refusal_reason`), and a lock is never overridden."""
    access, _reason = _acts_in(user, environment)
    if access is None:
        return False
    if access.superuser:
        return True
    cache = getattr(user, "_pushbutton_emergency", None)
    if cache is None or cache[0] is not access:
        cache = (
            access,
            frozenset(
                Environment.emergency_teams.through.objects.filter(
                    team__memberships__user=user
                ).values_list("environment_id", flat=True)
            ),
        )
        user._pushbutton_emergency = cache
    return environment.pk in cache[1]
