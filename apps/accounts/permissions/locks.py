"""May a user lock an environment (or a service on it), release a lock, or run through
a freeze window in an emergency?"""

from apps.accounts.constants import Role, TokenScope
from apps.accounts.models import Team
from apps.accounts.permissions.access import Access, _access, _in_token_limit, _runs


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
            # Through Environment.emergency_teams' reverse relation on Team.
            frozenset(
                Team.objects.filter(
                    memberships__user=user, emergency_environments__isnull=False
                ).values_list("emergency_environments", flat=True)
            ),
        )
        user._pushbutton_emergency = cache
    return environment.pk in cache[1]
