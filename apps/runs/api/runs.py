"""Runs through the API: launch one, list them, read one, its events, cancel it."""

from django.db.models import prefetch_related_objects
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.exceptions import NotFound
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response

from apps.audit.constants import Via
from apps.catalog.constants import ParameterInput
from apps.catalog.models import Action, Service
from apps.environments.models import Environment
from apps.runs import selectors, services
from apps.runs.api.answers import launch_answer
from apps.runs.api.serializers import (
    ErrorSerializer,
    EventPageSerializer,
    EventSerializer,
    LaunchSerializer,
    RunListQuerySerializer,
    RunPageSerializer,
    RunSerializer,
)
from apps.runs.models import RunEvent
from apps.runs.services import LaunchRequest
from apps.runs.services.idempotency import HEADER

IDEMPOTENCY_KEY = OpenApiParameter(
    HEADER,
    str,
    OpenApiParameter.HEADER,
    description="Asked again with the same key (within 24 h), the launch answers 200 with "
    "the run it created, never a second one; the same key with another body is a 422.",
)


def _not_found(field: str, value: str) -> Response:
    return Response(
        {"detail": f"No {field} {value!r}.", "errors": {field: [f"No {field} {value!r}."]}},
        status=status.HTTP_400_BAD_REQUEST,
    )


def _promoted_from(values: dict, environment) -> Environment | Response | None:
    slug = values["promoted_from"]
    if slug is None:
        return None
    source = Environment.objects.filter(slug=slug).first()
    if source is None:
        return _not_found("promoted_from", slug)
    if source.order >= environment.order:
        why = f"{source} is not before {environment}: a version is promoted onward only."
        return Response({"detail": why, "errors": {"promoted_from": [why]}}, status=400)
    return source


def _launch_request(request, values: dict) -> LaunchRequest | Response:
    """The launch the body asks for, or a 400 naming what it names that does not exist.
    A run the user may not see is named as one that does not exist."""
    # The action with its service in one query; which of the two is missing, only then.
    action = (
        Action.objects.select_related("playbook_version", "service")
        .filter(service__slug=values["service"], slug=values["action"])
        .first()
    )
    if action is None:
        if not Service.objects.filter(slug=values["service"]).exists():
            return _not_found("service", values["service"])
        return _not_found("action", values["action"])
    service = action.service
    environment = Environment.objects.filter(slug=values["environment"]).first()
    if environment is None:
        return _not_found("environment", values["environment"])
    rollback_of = None
    if values["rollback_of"] is not None:
        rollback_of = services.run_for(
            user=request.user, run_id=values["rollback_of"], request=request, via=Via.API
        )
        if rollback_of is None:
            return _not_found("rollback_of", str(values["rollback_of"]))
    promoted_from = _promoted_from(values, environment)
    if isinstance(promoted_from, Response):
        return promoted_from
    return LaunchRequest(
        user=request.user,
        service=service,
        action=action,
        environment=environment,
        parameters=values["parameters"],
        given_as=ParameterInput.JSON,
        via=Via.API,
        http_request=request,
        check=values["check"],
        auto_verify=values["verify"],
        rollback_of=rollback_of,
        promoted_from=promoted_from,
        reason=values["reason"],
        emergency_reason=values["emergency_reason"],
        source=values["source"],
        when_locked=values["when_locked"],
    )


class RunPages(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500


@extend_schema(
    methods=["GET"],
    operation_id="runs_list",
    parameters=[
        RunListQuerySerializer,
        RunPageSerializer,
        OpenApiParameter("limit", int),
        OpenApiParameter("offset", int),
    ],
    responses={200: RunPageSerializer, 400: ErrorSerializer},
    description="Runs you may see, newest first, filtered by service, environment, status, "
    "user (who requested it), commit (a prefix of the build's SHA) and creation time; "
    "paged by `limit` and `offset`.",
)
@extend_schema(
    methods=["POST"],
    operation_id="runs_create",
    request=LaunchSerializer,
    parameters=[IDEMPOTENCY_KEY],
    responses={
        200: RunSerializer,
        201: RunSerializer,
        400: ErrorSerializer,
        403: ErrorSerializer,
        409: ErrorSerializer,
        422: ErrorSerializer,
        503: ErrorSerializer,
    },
    description="Launch an action: 201 with the run, or 400/403/409/503 with the reason "
    "(409 when another run holds the service's lock on the environment, with that run; "
    "with `when_locked: queue`, or on an environment set to queue, 201 with a run whose "
    "status is `waiting`, its place in line in `waiting`). "
    "With an Idempotency-Key asked again: 200 with the run it created (422 when the body "
    "differs).",
)
@api_view(["GET", "POST"])
def runs(request):
    if request.method == "GET":
        return _run_list(request)
    data = LaunchSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    values = data.validated_data
    return launch_answer(
        request,
        kind="launch",
        values=dict(values),
        build=lambda: _launch_request(request, values),
    )


def _run_list(request) -> Response:
    query = RunListQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    runs = (
        selectors.run_list(user=request.user, filters=query.validated_data)
        .select_related("promoted_from", "firing__schedule")
        .prefetch_related("triggered__environment")
    )
    pages = RunPages()
    page = pages.paginate_queryset(runs, request)
    return pages.get_paginated_response(RunSerializer(page, many=True).data)


def _run(request, run_id):
    """The run, if the user may see it; 404 alike for a hidden run and a missing one."""
    run = services.run_for(
        user=request.user,
        run_id=run_id,
        request=request,
        via=Via.API,
        related=selectors.API_RELATED,
    )
    if run is None:
        raise NotFound("No such run.")
    return run


@extend_schema(responses=RunSerializer)
@api_view(["GET"])
def run_detail(request, run_id: int):
    run = _run(request, run_id)
    if run.may_have_follow_ups:
        # What followed it up, with their environments, read once for the two fields
        # that name them (follow_ups, awaits_follow_ups).
        prefetch_related_objects([run], "triggered__environment")
    return Response(RunSerializer(run).data)


@extend_schema(responses={200: EventPageSerializer, 400: ErrorSerializer})
@api_view(["GET"])
def run_events(request, run_id: int):
    """Events after counter `after`, in order (at most `limit`, default 1000)."""
    run = _run(request, run_id)
    try:
        after = int(request.query_params.get("after", 0))
        limit = min(int(request.query_params.get("limit", 1000)), 5000)
    except ValueError:
        return Response(
            {
                "detail": "after and limit are whole numbers.",
                "errors": {"after": ["Enter a whole number."]},
            },
            status=status.HTTP_400_BAD_REQUEST,
        )
    events = RunEvent.objects.filter(run=run, counter__gt=after).order_by("counter")[
        : max(limit, 1)
    ]
    return Response(
        {"run": run.pk, "status": run.status, "events": EventSerializer(events, many=True).data}
    )


@extend_schema(
    request=None,
    responses={
        202: RunSerializer,
        403: ErrorSerializer,
        404: ErrorSerializer,
        409: ErrorSerializer,
    },
)
@api_view(["POST"])
def run_cancel(request, run_id: int):
    run = _run(request, run_id)
    try:
        run = services.run_cancel(run=run, user=request.user, via=Via.API, request=request)
    except services.LaunchRefused as exc:
        return Response({"detail": exc.reason}, status=exc.status)
    return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)
