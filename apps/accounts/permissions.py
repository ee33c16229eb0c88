"""Who may do what: one function per question, used by pages, the API and services."""

from apps.accounts.models import Role


def can_run(user, *, action, environment) -> bool:
    """May `user` run `action` on `environment`?"""
    if not (user and user.is_authenticated and user.is_active):
        return False
    if user.role == Role.AUDITOR:
        return False
    return action.environments.filter(pk=environment.pk).exists()


def refusal_reason(user, *, action, environment) -> str | None:
    """Why `user` may not run `action` on `environment`, or None when they may."""
    if not (user and user.is_authenticated and user.is_active):
        return "Sign in to run actions."
    if user.role == Role.AUDITOR:
        return "Auditors can read everything but run nothing."
    if not action.environments.filter(pk=environment.pk).exists():
        return f"{action.label} is not offered on {environment.name}."
    return None


def can_view_run(user, run) -> bool:
    return bool(user and user.is_authenticated and user.is_active)


def can_cancel_run(user, run) -> bool:
    if not can_view_run(user, run):
        return False
    return user.is_superuser or user.role == Role.OPS or run.requested_by_id == user.pk
