"""The automatic rollback: on an environment set to roll back by itself, a failed
verification of what was just deployed there puts back the previous version verified
there, at once, as a rollback run the system launches on behalf of the deployer (its
rights, its token's limits, locks and freezes hold as for anyone).

It never loops: when what runs there came back by an automatic rollback already, a
failed verification stops there and says so (on the run, and to the notification rules
that listen for failures)."""

from apps.audit.constants import Via
from apps.catalog.constants import ActionKind, ParameterInput
from apps.catalog.models import Action
from apps.catalog.selectors import rollback_actions, verify_action
from apps.runs.constants import RunStatus
from apps.runs.models import Run
from apps.runs.selectors import deployments
from apps.runs.services.request import LaunchRequest
from apps.runs.services.waiting import acting_user

FAILED_VERIFICATION = (RunStatus.FAILED, RunStatus.TIMED_OUT)


def wants_auto_rollback(run: Run) -> bool:
    """Whether `run` is a failed verification on an environment that rolls back by itself."""
    return (
        run.action_kind == ActionKind.VERIFY
        and not run.check_mode
        and run.status in FAILED_VERIFICATION
        and run.environment.auto_rollback
    )


def _rollback_action(service, environment) -> Action | None:
    offered = rollback_actions(service=service, environment=environment)
    return offered[0] if offered else None


def auto_rollback_request(verification: Run) -> LaunchRequest | str | None:
    """The rollback a failed verification calls for; a sentence saying why there is none
    when one would be expected; None when it is not the verification of what runs there."""
    service, environment = verification.service, verification.environment
    current = deployments.current_version(service=service, environment=environment)
    if current is None or current.version != verification.version:
        return None
    if current.rollback_of_id and current.triggered_by_id:
        return (
            f"Not rolled back by itself: {current.version} is on {environment} by an automatic "
            f"rollback already (run #{current.pk}). A person must decide what runs there."
        )
    earlier = deployments.rollback_targets(
        service=service, environment=environment, current=current
    )
    targets = [
        run
        for run in earlier
        if deployments.verification(service=service, environment=environment, version=run.version)
    ]
    action = _rollback_action(service, environment)
    if not targets or action is None:
        why = "no earlier version was verified there" if action else "no action can roll back"
        return f"Not rolled back by itself: {why}."
    if not action.version_field and targets[0] != earlier[0]:
        return (
            f"Not rolled back by itself: {action.label} puts back {earlier[0].version}, which "
            f"was never verified on {environment}."
        )
    user, why_not = acting_user(current)
    if user is None:
        return f"Not rolled back by itself: {why_not}"
    version = targets[0].version
    parameters = (
        deployments.version_parameters(
            service=service, environment=environment, version=version, action=action
        )
        if action.version_field
        else {}
    )
    return LaunchRequest(
        user=user,
        service=service,
        action=action,
        environment=environment,
        parameters=parameters,
        given_as=ParameterInput.JSON,
        via=Via.SYSTEM,
        rollback_of=current,
        reason=(
            f"Automatic: the verification of {current.version} (run #{verification.pk}) "
            f"{verification.get_status_display().lower()}; {version} was the last version "
            f"verified on {environment}."
        ),
        auto_verify=verify_action(service=service, environment=environment) is not None,
        triggered_by=verification,
    )
