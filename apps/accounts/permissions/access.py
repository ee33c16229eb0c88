"""What a user may do, read once per user object (that is, once per request) and kept on
it: the facts every permission question of this package starts from."""

from dataclasses import dataclass

from allauth.mfa.models import Authenticator
from allauth.mfa.utils import is_mfa_enabled
from django.db.models import IntegerField, Value

from apps.accounts.constants import Right, Role
from apps.accounts.models import Grant, Team


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
    view, run, owned = set(), set(), set()
    for service_id, environment_id, right in _grants_and_owned(user):
        if right == OWNED:
            owned.add(service_id)
            continue
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
        owned=frozenset(owned),
        token=token,
        environments=(
            frozenset(token.environments.values_list("pk", flat=True))
            if token is not None and token.limited
            else None
        ),
    )
    user._pushbutton_access = access
    return access


OWNED = ""  # in _grants_and_owned's rows, a service the user's team owns (no grant's right)


def _grants_and_owned(user):
    """(service id, environment id, right) of each grant of the user's teams, and
    (service id, None, OWNED) of each service they own (through Team's reverse
    relation), in one query: every API request asks it."""
    # No order: the models' default one is not allowed in a union's parts.
    grants = (
        Grant.objects.filter(team__memberships__user=user)
        .order_by()
        .values_list("service_id", "environment_id", "right")
    )
    owned = (
        Team.objects.filter(memberships__user=user, services__isnull=False)
        .order_by()
        .values_list("services", Value(None, output_field=IntegerField()), Value(OWNED))
    )
    return grants.union(owned, all=True)


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
    # The environments the caller prefetched when it did (the catalog does, and asks this
    # for each of its buttons): read as they are, without a related manager and a
    # queryset made for each question.
    environments = getattr(action, "_prefetched_objects_cache", {}).get("environments")
    if environments is None:
        environments = action.environments.all()
    return any(env.pk == environment.pk for env in environments)


def _mfa_enabled(user) -> bool:
    """Has the user an authenticator app? (Asked once per user object.)"""
    if not hasattr(user, "_pushbutton_mfa"):
        user._pushbutton_mfa = is_mfa_enabled(user, [Authenticator.Type.TOTP])
    return user._pushbutton_mfa


def mfa_enabled(user) -> bool:
    """Has `user` an authenticator app (for two-factor authentication)?"""
    return _mfa_enabled(user)
