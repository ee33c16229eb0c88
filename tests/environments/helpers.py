"""Environment-level test support: a lock held through the service, as the Lock page and
the API take one."""

import datetime

from django.utils import timezone

from apps.audit.constants import Via
from apps.environments.models import EnvironmentLock
from apps.environments.services import lock_create

HOUR = datetime.timedelta(hours=1)


def hold_lock(
    user,
    environment,
    service=None,
    *,
    reason: str = "Database migration",
    expires_in: datetime.timedelta = HOUR,
    via: Via = Via.WEB,
) -> EnvironmentLock:
    """`user` locks `environment` (or only `service` there) for `expires_in` from now."""
    return lock_create(
        user=user,
        environment=environment,
        service=service,
        reason=reason,
        expires_at=timezone.now() + expires_in,
        via=via,
    )
