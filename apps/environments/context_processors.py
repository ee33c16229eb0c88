from functools import cached_property

from apps.accounts.permissions import can_unlock, can_view, environment_filter
from apps.environments.models import Environment
from apps.environments.selectors import active_locks, freezes_in_force, lock_reason


class Banner:
    """The locks and freezes holding now that the user may see, for every page's banner.

    Read only when a template asks (the banner of a full page), never for the small
    htmx fragments that are rendered many times a minute.
    """

    def __init__(self, user):
        self.user = user

    @cached_property
    def _environment_ids(self) -> set[int]:
        if not self.user.is_authenticated:
            return set()
        return set(
            Environment.objects.filter(environment_filter(self.user)).values_list("pk", flat=True)
        )

    @cached_property
    def locks(self) -> list[dict]:
        if not self._environment_ids:
            return []
        shown = []
        for lock in active_locks().filter(environment__in=self._environment_ids):
            if lock.service_id and not can_view(
                self.user, service=lock.service, environment=lock.environment
            ):
                continue
            shown.append(
                {
                    "lock": lock,
                    "reason": lock_reason(lock),
                    "can_unlock": can_unlock(self.user, lock),
                }
            )
        return shown

    @cached_property
    def freezes(self) -> list:
        if not self._environment_ids:
            return []
        return freezes_in_force(environments=self._environment_ids)

    def __bool__(self) -> bool:
        return bool(self.locks or self.freezes)


def environment_banner(request) -> dict:
    return {"environment_banner": Banner(request.user)}
