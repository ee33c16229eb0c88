"""Promote and Roll back through the API, as the service page offers them: the server
picks what the page would (the version verified on the environment before; the version
before the current one), with the parameters it ran with there, and launches through
the one launch path. Each carries the provenance of the run it repeats."""

from dataclasses import replace

from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view
from rest_framework.exceptions import NotFound, PermissionDenied

from apps.accounts.permissions import can_run, environment_filter, refusal_reason
from apps.audit.constants import Via
from apps.catalog.constants import ActionKind, ParameterInput
from apps.catalog.selectors import deploy_action, rollback_actions, service_list
from apps.environments.models import Environment
from apps.runs import services
from apps.runs.api.answers import launch_answer
from apps.runs.api.runs import IDEMPOTENCY_KEY
from apps.runs.api.serializers import (
    ErrorSerializer,
    PromoteSerializer,
    RollbackSerializer,
    RunSerializer,
)
from apps.runs.selectors import deployments
from apps.runs.services import LaunchRefused, LaunchRequest

ANSWERS = {
    200: RunSerializer,
    201: RunSerializer,
    400: ErrorSerializer,
    403: ErrorSerializer,
    404: ErrorSerializer,
    409: ErrorSerializer,
    422: ErrorSerializer,
    503: ErrorSerializer,
}


def _where(request, service_slug: str, environment_slug: str):
    """The service and environment, if the user may see them; 404 otherwise."""
    service = service_list(user=request.user).filter(slug=service_slug).first()
    if service is None:
        raise NotFound(f"No service {service_slug!r}.")
    environment = (
        Environment.objects.filter(environment_filter(request.user))
        .filter(slug=environment_slug)
        .first()
    )
    if environment is None:
        raise NotFound(f"No environment {environment_slug!r}.")
    return service, environment


def _request(request, values: dict, **launch) -> LaunchRequest:
    return LaunchRequest(
        user=request.user,
        given_as=ParameterInput.JSON,  # the values a run had before
        via=Via.API,
        http_request=request,
        auto_verify=values["verify"],
        emergency_reason=values["emergency_reason"],
        when_locked=values["when_locked"],
        **launch,
    )


def _refuse(req: LaunchRequest, reason: str, *, status: int = 409) -> LaunchRefused:
    refused = LaunchRefused(reason, status=status)
    services.run_refusal_record(req, refused)
    return refused


def _promotion(request, service_slug, environment_slug, values) -> LaunchRequest:
    service, environment = _where(request, service_slug, environment_slug)
    action = deploy_action(service=service, environment=environment)
    offered = action or _actions(service, environment, ActionKind.DEPLOY).first()
    req = _request(request, values, service=service, action=offered, environment=environment)
    if offered is None:
        raise _refuse(req, f"{service} has no deploy action on {environment}.")
    if why := refusal_reason(request.user, action=offered, environment=environment):
        raise PermissionDenied(why)  # said and recorded by the API's exception handler
    if action is None:
        raise _refuse(req, f"{offered.label} names no version field: Ops must set it to promote.")
    source = deployments.previous_environment(environment)
    if source is None:
        raise _refuse(req, f"{environment} is the first environment: nothing is promoted to it.")
    version = values["version"]
    if not version:
        candidate = deployments.promotion_candidate(service=service, environment=environment)
        if candidate is None:
            raise _refuse(req, _nothing_to_promote(service, source, environment))
        version = candidate.version
    elif not deployments.was_deployed(service=service, environment=source, version=version):
        raise _refuse(req, f"{service} {version} never ran on {source}: it cannot be promoted.")
    current = deployments.current_version(service=service, environment=environment)
    if current is not None and current.version == version:
        raise _refuse(req, f"{service} {version} runs on {environment} already.")
    parameters = deployments.version_parameters(
        service=service, environment=source, version=version, action=action
    )
    return replace(req, parameters=parameters, promoted_from=source)


def _nothing_to_promote(service, source, environment) -> str:
    """Why nothing is offered: what runs on `source` now was not verified there since."""
    there = deployments.current_version(service=service, environment=source)
    if there is None:
        return f"No version of {service} was deployed and verified on {source} yet."
    why = deployments.promotion_refusal(
        service=service, source=source, target=environment, version=there.version
    )
    return f"Nothing to promote: {why}."


@extend_schema(request=PromoteSerializer, parameters=[IDEMPOTENCY_KEY], responses=ANSWERS)
@api_view(["POST"])
def promote(request, service_slug: str, environment_slug: str):
    """Promote the newest version verified on the environment before (or `version`) onto
    this one, with the parameters it was deployed with there: 201 with the run; 409 when
    there is nothing to promote or the promotion rule refuses it."""
    data = PromoteSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    values = data.validated_data
    return launch_answer(
        request,
        kind="promote",
        values={**values, "service": service_slug, "environment": environment_slug},
        build=lambda: _promotion(request, service_slug, environment_slug, values),
    )


def _actions(service, environment, kind):
    return service.actions.filter(kind=kind, environments=environment).order_by("position", "pk")


def _rollback_action(request, service, environment):
    """What rolls back here for this user, as the service page offers it: the deploy action
    (any earlier version), else a rollback action (the version before only). None when
    there is none; PermissionDenied, with the reason, when the user may run none."""
    offered = rollback_actions(service=service, environment=environment)
    for action in offered:
        if can_run(request.user, action=action, environment=environment):
            return action
    shown = offered[0] if offered else _actions(service, environment, ActionKind.DEPLOY).first()
    if shown is not None and (
        why := refusal_reason(request.user, action=shown, environment=environment)
    ):
        raise PermissionDenied(why)  # said and recorded by the API's exception handler
    return None


def _rollback(request, service_slug, environment_slug, values) -> LaunchRequest:
    service, environment = _where(request, service_slug, environment_slug)
    action = _rollback_action(request, service, environment)
    req = _request(request, values, service=service, action=action, environment=environment)
    if action is None:
        raise _refuse(req, f"{service} has no deploy or rollback action on {environment}.")
    current = deployments.current_version(service=service, environment=environment)
    if current is None:
        raise _refuse(req, f"Nothing runs on {environment} yet: there is nothing to roll back.")
    targets = deployments.rollback_targets(
        service=service, environment=environment, current=current
    )
    if action.kind == ActionKind.ROLLBACK:
        targets = targets[:1]
    if not targets:
        raise _refuse(
            req, f"Nothing ran on {environment} before {current.version} to roll back to."
        )
    version = values["version"] or targets[0].version
    if not action.version_field and version != targets[0].version:
        raise _refuse(
            req,
            f"{action.label} puts back the version before the current one only "
            f"({targets[0].version}).",
        )
    parameters = (
        deployments.version_parameters(
            service=service, environment=environment, version=version, action=action
        )
        if action.version_field
        else {}
    )
    return replace(req, parameters=parameters, rollback_of=current, reason=values["reason"])


@extend_schema(request=RollbackSerializer, parameters=[IDEMPOTENCY_KEY], responses=ANSWERS)
@api_view(["POST"])
def rollback(request, service_slug: str, environment_slug: str):
    """Roll back what runs on the environment to an earlier version that ran there (the
    one before by default; `version` for another), saying why: 201 with the run, marked
    as the rollback of the run that put the current version there; 409 when there is
    nothing to roll back to or the version is not one that may be put back."""
    data = RollbackSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    values = data.validated_data
    return launch_answer(
        request,
        kind="rollback",
        values={**values, "service": service_slug, "environment": environment_slug},
        build=lambda: _rollback(request, service_slug, environment_slug, values),
    )
