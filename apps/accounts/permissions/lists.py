"""What a user may see, as filters for list queries."""

from django.db.models import Q

from apps.accounts.constants import Role
from apps.accounts.permissions.access import Access, _access, _in_token_limit

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


def service_filter(user, *, environment=None) -> Q:
    """The services `user` may see (on at least one environment, or on `environment`),
    as a filter on Service."""
    access = _access(user)
    if not access.active or (access.environments is not None and not access.environments):
        return _NONE
    if environment is not None and not _in_token_limit(access, environment.pk):
        return _NONE
    if access.sees_everything:
        return Q()
    q = Q(pk__in=access.owned) if access.owned else _NONE
    pairs = [
        (sid, eid)
        for sid, eid in access.view
        if _in_token_limit(access, eid) and (environment is None or eid == environment.pk)
    ]
    if any(sid is None for sid, _ in pairs):
        return Q()
    ids = {sid for sid, _ in pairs}
    return q | Q(pk__in=ids) if ids else q


def mine_filter(user) -> Q:
    """The services that are `user`'s own, as a filter on Service: those their teams own
    and those they may run somewhere (a run grant of one of their teams, through the
    token's limits). Seeing everything (Ops, auditors) makes nothing one's own."""
    access = _access(user)
    if not access.active or access.role == Role.AUDITOR:
        return _NONE
    q = Q(pk__in=access.owned) if access.owned else _NONE
    pairs = [(sid, eid) for sid, eid in access.run if _in_token_limit(access, eid)]
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
