import datetime
from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from apps.catalog.choices import SourcedChoices, choices_fetch
from apps.catalog.parameters import sourced_fields
from apps.environments.constants import CredentialKind
from apps.environments.models import Credential, Environment, EnvironmentLock, FreezeWindow
from portal.crypto import DecryptionError, decrypt_text


class CredentialConflict(Exception):
    """Two credentials would fill the same slot of a run (two SSH keys, two values of
    one variable...): the portal will not guess which one is meant."""


def credentials_for_run(*, action, environment) -> list[Credential]:
    """The credentials a run of `action` on `environment` gets.

    A credential attached to the environment goes to every action there unless it
    names actions, then only to those. Per slot (an SSH key, a become password, a
    vault password, each variable), one restricted to this action wins over one
    for the whole environment; two at the same level raise CredentialConflict.
    """
    candidates = (
        Credential.objects.filter(environments=environment)
        .annotate(restricted=Count("actions", distinct=True))
        .filter(Q(restricted=0) | Q(actions=action))
        .distinct()
        .order_by("name")
    )
    slots: dict[tuple[str, str], list[Credential]] = {}
    for credential in candidates:
        slot = (credential.kind, credential.variable)
        slots.setdefault(slot, []).append(credential)
    chosen = []
    for (kind, variable), found in slots.items():
        specific = [c for c in found if c.restricted] or found
        if len(specific) > 1:
            what = (
                f"variable {variable!r}"
                if kind == CredentialKind.SECRET_VARIABLE
                else CredentialKind(kind).label
            )
            names = ", ".join(repr(c.name) for c in specific)
            raise CredentialConflict(
                f"{environment} has more than one credential for the {what} of "
                f"{action.label}: {names}. Ops must keep one (or restrict each to its actions)."
            )
        chosen.append(specific[0])
    return chosen


# --- locks and freeze windows ---------------------------------------------------------
def when(moment: datetime.datetime, zone=None) -> str:
    """A moment as users read it in a reason: "Fri 27 Nov 2026 14:00 UTC"."""
    local = moment.astimezone(zone or timezone.get_current_timezone())
    return local.strftime("%a %d %b %Y %H:%M ") + (local.tzname() or "")


def active_locks(*, environment=None, service=None, at=None) -> QuerySet[EnvironmentLock]:
    """Locks holding at `at` (now): not released, not expired; oldest first. With
    `service`, those of the whole environment and those of that service."""
    locks = EnvironmentLock.objects.filter(
        released_at__isnull=True, expires_at__gt=at or timezone.now()
    ).select_related("environment", "service")
    if environment is not None:
        locks = locks.filter(environment=environment)
    if service is not None:
        locks = locks.filter(Q(service__isnull=True) | Q(service=service))
    return locks.order_by("created_at", "pk")


@dataclass(frozen=True)
class FreezeInForce:
    """A freeze window in force now, and when it ends (back-to-back windows joined)."""

    window: FreezeWindow
    until: datetime.datetime

    @property
    def environment(self) -> Environment:
        return self.window.environment

    @property
    def reason(self) -> str:
        return freeze_reason(self)


def freezes_in_force(*, environments=None, at=None) -> list[FreezeInForce]:
    """The freeze windows in force at `at` (now), on `environments` (all): one query."""
    at = at or timezone.now()
    windows = FreezeWindow.objects.filter(active=True).select_related("environment")
    if environments is not None:
        windows = windows.filter(environment__in=environments)
    found = []
    for window in windows.order_by("environment__order", "name", "pk"):
        if (until := window.in_force_until(at)) is not None:
            found.append(FreezeInForce(window=window, until=until))
    return found


def freeze_in_force(environment, at=None) -> FreezeInForce | None:
    """The freeze window in force on `environment` at `at` (now), the one that ends last
    when several are; None when runs there are not frozen."""
    found = freezes_in_force(environments=[environment], at=at)
    return max(found, key=lambda freeze: freeze.until) if found else None


def lock_reason(lock: EnvironmentLock) -> str:
    """What a user stopped by `lock` reads: what is locked, by whom, why, until when."""
    what = (
        f"{lock.service.name} is locked on {lock.environment.name}"
        if lock.service_id
        else f"{lock.environment.name} is locked"
    )
    reason = lock.reason.strip().rstrip(".")
    return (
        f"{what} by {lock.created_by_name} until {when(lock.expires_at)}: {reason}. "
        f"{lock.created_by_name} or Ops can unlock it."
    )


def freeze_reason(freeze: FreezeInForce) -> str:
    """What a user stopped by a freeze reads: which window, why, until when."""
    window = freeze.window
    why = f": {window.reason.strip().rstrip('.')}" if window.reason.strip() else ""
    return (
        f"{window.environment.name} is frozen by the freeze window “{window.name}” "
        f"({window.schedule()}) until {when(freeze.until, window.zone)}{why}."
    )


@dataclass(frozen=True)
class LaunchBlock:
    """Why runs may not start on an environment now: a lock (never overridden) or a
    freeze window (an emergency override may pass it)."""

    kind: str  # "lock" or "freeze"
    reason: str
    overridable: bool
    until: datetime.datetime | None = None
    lock_id: int | None = None  # the lock, for kind "lock"
    freeze_id: int | None = None  # the freeze window, for kind "freeze"

    def details(self) -> dict:
        """For an audit row's details."""
        found = {"lock": self.lock_id} if self.lock_id else {"freeze_window": self.freeze_id}
        return {"block": self.kind, "block_reason": self.reason, **found}


def launch_block(*, service, environment, at=None) -> LaunchBlock | None:
    """The lock or freeze that stops a run of `service` on `environment` at `at` (now).

    A lock (of the whole environment, or of this service there) wins over a freeze;
    expired and released locks count for nothing. Two queries at most.
    """
    at = at or timezone.now()
    lock = active_locks(environment=environment, service=service, at=at).first()
    if lock is not None:
        return LaunchBlock(
            kind="lock",
            reason=lock_reason(lock),
            overridable=False,
            until=lock.expires_at,
            lock_id=lock.pk,
        )
    freeze = freeze_in_force(environment, at=at)
    if freeze is not None:
        return LaunchBlock(
            kind="freeze",
            reason=freeze_reason(freeze),
            overridable=True,
            until=freeze.until,
            freeze_id=freeze.window.pk,
        )
    return None


# --- choices of a form from a source ---------------------------------------------------
def form_choices(*, action, environment) -> dict[str, SourcedChoices]:
    """What the choice sources of `action`'s form answer for a run on `environment`, by
    field name (apps/catalog/choices.py). A source's token is the secret of the credential
    it names, which must be one that runs of the action there get: a form shows nothing
    that a run there could not read anyway."""
    sourced = {}
    for field in sourced_fields(action.form):
        source = field["choices_from"]
        try:
            token = _source_token(source, action=action, environment=environment)
        except (CredentialConflict, DecryptionError, LookupError) as exc:
            sourced[field["name"]] = SourcedChoices(error=str(exc))
            continue
        sourced[field["name"]] = choices_fetch(source, token=token)
    return sourced


def _source_token(source: dict, *, action, environment) -> str:
    name = source.get("token_credential")
    if not name:
        return ""
    given = {c.name: c for c in credentials_for_run(action=action, environment=environment)}
    if name not in given:
        raise LookupError(
            f"the credential {name!r} is not given to {action.label} on {environment}."
        )
    return decrypt_text(given[name].secret_encrypted)
