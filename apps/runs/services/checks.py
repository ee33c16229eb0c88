"""The checks of a launch, in the order a refusal should be explained: who may run it,
what it runs, with which parameters, whether the environment takes it now.

Each check raises LaunchRefused or ParameterError; `plan` runs them all and returns what
the launch will run with. Only `launch.run_plan` calls `plan` (it records refusals)."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import Q
from django.urls import reverse

from apps.accounts.permissions import (
    can_override_freeze,
    reauthentication_reason,
    refusal_reason,
)
from apps.audit.constants import Via
from apps.catalog.choices import SourcedChoices
from apps.catalog.constants import ActionKind
from apps.catalog.parameters import (
    ParameterError,
    parameters_clean,
    parameters_masked,
    secret_names,
)
from apps.catalog.selectors import verify_action
from apps.environments.constants import WhenLocked
from apps.environments.selectors import (
    CredentialConflict,
    credentials_for_run,
    form_choices,
    launch_block,
)
from apps.environments.services import credential_values
from apps.runs.constants import (
    ACTIVE_STATUSES,
    REFUSAL_KIND_BY_STATUS,
    VERSION_MAX_CHARS,
    RefusalKind,
    RunStatus,
)
from apps.runs.models import Run
from apps.runs.queue import queue_unreachable_reason
from apps.runs.selectors import deployments
from apps.workers.selectors import no_worker_reason
from portal.crypto import DecryptionError

if TYPE_CHECKING:
    from apps.runs.services.request import LaunchRequest


class LaunchRefused(Exception):
    """A launch the portal will not do; `status` is the HTTP status that says why.

    `reauthenticate`: what is missing is a recent confirmation of the second factor,
    which a page can ask for and then retry."""

    def __init__(
        self,
        reason: str,
        *,
        status: int = 403,
        field: str | None = None,
        holder: "Run | None" = None,
        missing: dict | None = None,
        reauthenticate: bool = False,
        queue: str | None = None,
        kind: str = "",
    ):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        # Why, in a word (RefusalKind): the audit row keeps it, /metrics counts by it.
        self.kind = kind or REFUSAL_KIND_BY_STATUS.get(status, RefusalKind.CONFLICT)
        self.field = field
        self.holder = holder  # the run holding the deploy lock, for a 409
        self.missing = missing  # what the promotion rule lacks: environment, version, url
        self.reauthenticate = reauthenticate
        self.queue = queue  # the queue no live worker consumes, for a 503


@dataclass
class LaunchPlan:
    """What a launch will run with, once every check passed."""

    clean: dict
    masked: dict
    secrets: dict
    version: str
    credentials: list[dict]
    emergency: bool
    current: Run | None  # what runs on the environment now (deploys and rollbacks)
    emergency_reason: str = ""
    waits: bool = False  # it joins the deploy queue: the lock is held, or others wait


# A run holding a deploy lock (dry runs change nothing and never hold it), and one
# waiting in line for it.
_HOLDS_LOCK = Q(status__in=ACTIVE_STATUSES, check_mode=False)
_IN_LINE = Q(status=RunStatus.WAITING)


def lock_holder(service, environment) -> Run | None:
    """The run holding the deploy lock of `service` on `environment`, if one does."""
    return (
        Run.objects.filter(_HOLDS_LOCK, service=service, environment=environment)
        .order_by("id")
        .first()
    )


def locked(holder: Run) -> LaunchRefused:
    return LaunchRefused(
        f"{holder.service} is busy on {holder.environment}: run #{holder.pk} "
        f"({holder.action_label}, {holder.get_status_display().lower()}, requested by "
        f"{holder.requested_by_name}) holds the deploy lock. Wait for it to end, or cancel it.",
        status=409,
        holder=holder,
        kind=RefusalKind.LOCKED,
    )


def waiting_line(service, environment):
    """The runs waiting in the deploy queue of `service` on `environment`, first first."""
    return Run.objects.filter(_IN_LINE, service=service, environment=environment).order_by("id")


def queues(req: "LaunchRequest") -> bool:
    """Whether `req` waits in line when the deploy lock is held: as it asks, or as its
    environment says. A verification checks what runs there now, so it never waits."""
    mode = req.when_locked or req.environment.when_locked
    return mode == WhenLocked.QUEUE and req.action.kind != ActionKind.VERIFY


def _deploy_lock(req: "LaunchRequest") -> bool:
    """The deploy lock: whether the run waits in the deploy queue (True) or starts now
    (False); refused (409) when it is held and the request does not queue.

    Runs waiting in line keep their turn: a new request goes behind them even in the
    moment the lock is free between two runs. What the system starts for a run that
    just ended (its verification) is part of that run and does not queue behind."""
    busy = _HOLDS_LOCK if req.triggered_by is not None else _HOLDS_LOCK | _IN_LINE
    if not Run.objects.filter(busy, service=req.service, environment=req.environment).exists():
        return False  # the lock free and nobody in line, the common case: one query
    holder = lock_holder(req.service, req.environment)
    ahead = (
        0 if req.triggered_by is not None else waiting_line(req.service, req.environment).count()
    )
    if holder is None and not ahead:
        return False
    if queues(req):
        return True
    if holder is not None:
        raise locked(holder)
    raise LaunchRefused(
        f"{ahead} run{'s' if ahead > 1 else ''} of {req.service} wait{'' if ahead > 1 else 's'} "
        f"in line on {req.environment} for the deploy lock. Ask to queue yours "
        "(when_locked: queue), or wait for them.",
        status=409,
        kind=RefusalKind.LOCKED,
    )


def _rights(req: "LaunchRequest") -> None:
    """The user's right to run the action there, with its second factor; an approved
    playbook version."""
    service, action, environment = req.service, req.action, req.environment
    if action.service_id != service.pk:
        raise LaunchRefused(f"{service} has no action {action.slug!r}.", status=400, field="action")
    if why := refusal_reason(req.user, action=action, environment=environment):
        raise LaunchRefused(why, status=403)
    if why := reauthentication_reason(req.user, environment=environment, request=req.http_request):
        # A page can ask for the code and try again; the API cannot.
        can_ask = req.via == Via.WEB
        raise LaunchRefused(why, status=403, reauthenticate=can_ask)
    if not action.playbook_version.is_approved:
        raise LaunchRefused(
            f"The playbook version of {action.label} is not approved.",
            status=409,
            kind=RefusalKind.NOT_APPROVED,
        )


def _timeout(req: "LaunchRequest") -> None:
    action = req.action
    if action.timeout > settings.RUN_TIMEOUT_MAX:
        raise LaunchRefused(
            f"The timeout of {action.label} ({action.timeout} s) is above the longest a run "
            f"may take here ({settings.RUN_TIMEOUT_MAX} s): Ops must lower it.",
            status=409,
        )


def _inventory(req: "LaunchRequest") -> None:
    """An inventory kept in a playbook source is read from the tree the run exports: the
    action's playbook must come from that source."""
    environment, version = req.environment, req.action.playbook_version
    if environment.inventory_in_source and version.source_id != environment.inventory_source_id:
        raise LaunchRefused(
            f"The inventory of {environment} is {environment.inventory_path} in the source "
            f"{environment.inventory_source}, but {req.action.label} runs a playbook of "
            f"{version.source}: Ops must keep them in one repository.",
            status=409,
        )


def _repeats_a_version(req: "LaunchRequest", version: str) -> bool:
    """Whether the launch puts back, promotes or verifies `version`, which already ran:
    what the portal starts by itself; a rollback (its rules, checked later, accept only a
    version that ran there); a verification (only of what runs there); a promotion of a
    version deployed where it is promoted from."""
    if req.triggered_by is not None or req.rollback_of is not None:
        return True
    if req.action.kind == ActionKind.VERIFY and not req.check:
        return True
    return req.promoted_from is not None and deployments.was_deployed(
        service=req.service, environment=req.promoted_from, version=version
    )


def _parameters(req: "LaunchRequest") -> tuple[dict, dict, dict, str]:
    """The parameters cleaned against the form: (clean, secrets, masked, version)."""
    action = req.action
    # Choices from a source are checked against the list it holds now, as the form shows.
    sourced = form_choices(action=action, environment=req.environment)
    field = action.version_field
    value = req.parameters.get(field) if isinstance(req.parameters, Mapping) else None
    if (
        field in sourced
        and isinstance(value, str)
        and value
        and value not in sourced[field].values
        and _repeats_a_version(req, value)
    ):
        # A version that already ran is put back, promoted or verified even when the list
        # no longer holds it (or its source is away).
        sourced[field] = SourcedChoices(choices=[*sourced[field].choices, (value, value)])
    clean = parameters_clean(action.form, req.parameters, given_as=req.given_as, sourced=sourced)
    secrets = {k: clean[k] for k in secret_names(action.form) if clean.get(k) not in (None, "")}
    masked = parameters_masked(action.form, clean)
    version = str(clean.get(action.version_field) or "") if action.version_field else ""
    if len(version) > VERSION_MAX_CHARS:
        raise ParameterError({action.version_field: [f"At most {VERSION_MAX_CHARS} characters."]})
    return clean, secrets, masked, version


def _version(req: "LaunchRequest", version: str, current: Run | None) -> str:
    """The version the run is about: a verification checks what runs there now; a
    rollback puts back the version before the current one (until its playbook says)."""
    action, environment = req.action, req.environment
    if action.kind == ActionKind.VERIFY and not req.check:
        running = current.version if current else ""
        if version and version != running:
            raise ParameterError(
                {
                    action.version_field: [
                        f"{environment} runs {running or 'no version'}: a verification "
                        "checks what runs there."
                    ]
                }
            )
        return running
    if req.rollback_of is None:
        return version
    if problem := rollback_problem(req, current=current):
        raise problem
    return _rollback_version(req, version, current)


def _rollback_version(req: "LaunchRequest", version: str, current: Run) -> str:
    """A rollback puts back one of the versions the Roll back page offers: an earlier
    successful one there, never one that was itself rolled back. A rollback action
    that names no version puts back the one before (until its playbook says)."""
    targets = deployments.rollback_targets(
        service=req.service, environment=req.environment, current=current
    )
    offered = [run.version for run in targets]
    if not version and req.action.kind == ActionKind.ROLLBACK:
        return offered[0] if offered else ""
    if version in offered:
        return version
    if not offered:
        why = f"nothing ran on {req.environment} before {current.version} to roll back to"
    else:
        why = f"the versions to roll back to are {', '.join(offered)}"
    field = req.action.version_field or "rollback_of"
    raise LaunchRefused(
        f"{req.service} {version or '(no version)'} cannot be rolled back to on "
        f"{req.environment}: {why} (never the current one, one that did not run there, "
        "nor one that was itself rolled back).",
        status=409,
        field=field,
    )


def rollback_problem(req: "LaunchRequest", *, current: Run | None) -> LaunchRefused | None:
    """A rollback undoes what runs there now: `rollback_of` must be the run that put it
    there, and the reason must be given."""
    target, service, environment = req.rollback_of, req.service, req.environment
    if target is None:
        return None
    if target.service_id != service.pk or target.environment_id != environment.pk:
        return LaunchRefused(
            f"Run #{target.pk} did not run {service} on {environment}: it cannot be rolled back "
            "from here.",
            status=400,
            field="rollback_of",
        )
    if target.check_mode or target.status != RunStatus.SUCCESSFUL:
        return LaunchRefused(
            f"Run #{target.pk} changed nothing (it is a dry run or did not succeed): there is "
            "nothing to roll back.",
            status=400,
            field="rollback_of",
        )
    if current is None or target.pk != current.pk:
        return LaunchRefused(
            f"Run #{target.pk} is not what runs on {environment} now"
            + (f" (run #{current.pk} is)" if current else "")
            + ": only the current version can be rolled back.",
            status=409,
            field="rollback_of",
        )
    if not req.reason.strip():
        return LaunchRefused("Say why you roll back.", status=400, field="reason")
    return None


def _verify_follow_up(req: "LaunchRequest") -> None:
    if (
        req.auto_verify
        and not req.check
        and verify_action(service=req.service, environment=req.environment) is None
    ):
        raise LaunchRefused(
            f"{req.service} has no verify action on {req.environment}: nothing to verify with.",
            status=400,
            field="verify",
        )


def _emergency(req: "LaunchRequest") -> tuple[bool, str]:
    """Whether a lock or a freeze stops the run, and whether an emergency override
    lets it pass: (emergency, its reason)."""
    service, environment, user = req.service, req.environment, req.user
    block = launch_block(service=service, environment=environment)
    if block and req.check and block.overridable:
        block = None  # a dry run changes nothing: a freeze lets it through, a lock does not
    if not block:
        return False, ""
    reason = req.emergency_reason.strip()
    trigger = req.triggered_by
    if (
        block.overridable
        and trigger is not None
        and trigger.emergency
        and req.action.kind == ActionKind.VERIFY
    ):
        # The verification of an emergency run may follow it through the freeze.
        return True, reason or (
            f"Verification of emergency run #{trigger.pk}: {trigger.emergency_reason}"
        )
    if not (block.overridable and reason):
        hint = ""
        if block.overridable and can_override_freeze(user, environment=environment):
            hint = " An emergency override, with its reason, can pass it."
        raise LaunchRefused(block.reason + hint, status=409, kind=RefusalKind.BLOCKED)
    if trigger is not None or not can_override_freeze(user, environment=environment):
        raise LaunchRefused(
            f"{block.reason} Only those with the emergency right on {environment} may override it.",
            status=403,
            kind=RefusalKind.BLOCKED,
        )
    return True, reason


def promotion_problem(req: "LaunchRequest", *, version: str) -> LaunchRefused | None:
    """The promotion rule: the version runs on the environment before this one and was
    verified there since it was put there (not rolled back nor replaced since). A rollback
    to a version that already ran here successfully is exempt."""
    service, action, environment = req.service, req.action, req.environment
    if action.kind != ActionKind.DEPLOY or not environment.require_verified:
        return None
    source = deployments.previous_environment(environment)
    if source is None:
        return None
    if not version:
        return LaunchRefused(
            f"{environment} accepts only verified versions, and {action.label} names no version "
            "field: Ops must set it.",
            status=409,
            kind=RefusalKind.PROMOTION,
        )
    if req.rollback_of is not None and deployments.was_deployed(
        service=service, environment=environment, version=version
    ):
        return None
    # Only what runs on the environment before now, verified since it was put there.
    why = deployments.promotion_refusal(
        service=service, source=source, target=environment, version=version
    )
    if not why:
        return None
    deployed = deployments.was_deployed(service=service, environment=source, version=version)
    url = reverse("catalog:service", args=[service.slug]) + f"#env-{source.slug}"
    return LaunchRefused(
        f"{why}.",
        status=409,
        field=action.version_field,
        kind=RefusalKind.PROMOTION,
        missing={
            "environment": source.slug,
            "version": version,
            "deployed": deployed,
            "verified": False,
            "url": url,
        },
    )


def _credentials(req: "LaunchRequest") -> list[dict]:
    """The environment's credentials for the action, decrypted, none clashing with a
    field of the form."""
    action, environment = req.action, req.environment
    try:
        credentials = [
            credential_values(c)
            for c in credentials_for_run(action=action, environment=environment)
        ]
    except (CredentialConflict, DecryptionError) as exc:
        raise LaunchRefused(f"Credentials: {exc}", status=409) from exc
    if clash := {c["variable"] for c in credentials} & {f["name"] for f in action.form}:
        raise LaunchRefused(
            f"A credential of {environment} and a field of the form both set "
            f"{', '.join(sorted(clash))}: Ops must rename one.",
            status=409,
        )
    return credentials


def worker_problem(*, queue: str, environment) -> LaunchRefused | None:
    """No live worker consumes `queue` (where the runs of `environment` go): a run sent
    there would only wait, so it is refused (503) rather than queued. Every launch and
    the deploy queue's advance ask this one question."""
    if why := no_worker_reason(queue=queue, environment=str(environment)):
        return LaunchRefused(
            f"{why} Nothing was launched: it would only wait. Start a worker for that queue "
            f"(celery -A portal worker -Q {queue}), or tell Ops.",
            status=503,
            queue=queue,
            kind=RefusalKind.NO_WORKER,
        )
    return None


def plan(req: "LaunchRequest") -> LaunchPlan:
    """Run every check of `req`, in order; see launch.run_plan."""
    _rights(req)
    clean, secrets, masked, version = _parameters(req)
    _timeout(req)
    _inventory(req)
    current = deployments.current_version(service=req.service, environment=req.environment)
    version = _version(req, version, current)
    _verify_follow_up(req)
    emergency, emergency_reason = _emergency(req)
    if not req.check and (problem := promotion_problem(req, version=version)):
        raise problem
    credentials = _credentials(req)
    if problem := worker_problem(queue=req.environment.queue, environment=req.environment):
        raise problem
    waits = False if req.check else _deploy_lock(req)
    if not waits and (why := queue_unreachable_reason()):
        raise LaunchRefused(why, status=503)
    return LaunchPlan(
        clean, masked, secrets, version, credentials, emergency, current, emergency_reason, waits
    )
