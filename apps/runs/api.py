from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from apps.audit.constants import Via
from apps.catalog.constants import ParameterInput
from apps.catalog.models import Action, Service
from apps.catalog.parameters import ParameterError
from apps.environments.models import Environment
from apps.runs import services
from apps.runs.models import RunEvent
from apps.runs.services import LaunchRequest


class RunSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    url = serializers.CharField(source="get_absolute_url")
    status = serializers.CharField()
    service = serializers.CharField(source="service.slug")
    action = serializers.CharField(source="action_slug")
    environment = serializers.CharField(source="environment.slug")
    parameters = serializers.JSONField()
    check = serializers.BooleanField(source="check_mode")
    version = serializers.CharField()
    requested_by = serializers.CharField(source="requested_by_name")
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    rc = serializers.IntegerField(allow_null=True)
    host_summary = serializers.JSONField()
    error = serializers.CharField()
    playbook = serializers.SerializerMethodField()
    verify = serializers.BooleanField(source="auto_verify")
    rollback_of = serializers.IntegerField(source="rollback_of_id", allow_null=True)
    reason = serializers.CharField()
    promoted_from = serializers.CharField(source="promoted_from.slug", allow_null=True)
    emergency = serializers.BooleanField()
    emergency_reason = serializers.CharField()
    triggered_by = serializers.IntegerField(
        source="triggered_by_id",
        allow_null=True,
        help_text="Set on runs the system launched by itself after that run succeeded.",
    )
    follow_up_error = serializers.CharField()

    def get_playbook(self, run) -> dict:
        return {
            "path": run.playbook_path,
            "commit": run.playbook_commit,
            "content_hash": run.content_hash,
        }


class LaunchSerializer(serializers.Serializer):
    service = serializers.SlugField()
    action = serializers.SlugField()
    environment = serializers.SlugField()
    parameters = serializers.JSONField(required=False, default=dict)
    check = serializers.BooleanField(required=False, default=False)
    verify = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Once the deploy succeeded, run the service's verify action by itself.",
    )
    rollback_of = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        help_text="The run (on this service and environment) whose change this one undoes.",
    )
    reason = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=2000, help_text="Of a rollback."
    )
    emergency_reason = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=2000,
        help_text="Overrides a freeze window, for who has the emergency right.",
    )


class EventSerializer(serializers.ModelSerializer):
    class Meta:
        model = RunEvent
        fields = [
            "counter",
            "event",
            "created",
            "host",
            "play",
            "task",
            "start_line",
            "end_line",
            "stdout",
            "failed",
            "changed",
        ]
        extra_kwargs = {
            "stdout": {
                "help_text": "As Ansible printed it, for programs: colours, terminal escape "
                'sequences and control characters included; lines end at "\\n" '
                "(start_line/end_line count them). Clean it before showing it in a terminal."
            }
        }


class EventPageSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    status = serializers.CharField()
    events = EventSerializer(many=True)


class LockHolderSerializer(serializers.Serializer):
    """The run that holds the deploy lock of a service and environment."""

    run = serializers.IntegerField(source="pk")
    url = serializers.CharField(source="get_absolute_url")
    status = serializers.CharField()
    action = serializers.CharField(source="action_slug")
    requested_by = serializers.CharField(source="requested_by_name")


class MissingSerializer(serializers.Serializer):
    """What the promotion rule lacks for this version."""

    environment = serializers.CharField()
    version = serializers.CharField()
    deployed = serializers.BooleanField()
    verified = serializers.BooleanField()
    url = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    errors = serializers.DictField(required=False)
    lock = LockHolderSerializer(required=False, help_text="409: the run holding the lock.")
    missing = MissingSerializer(
        required=False, help_text="409: the verification the promotion rule needs first."
    )


def _not_found(field: str, value: str) -> Response:
    return Response(
        {"detail": f"No {field} {value!r}.", "errors": {field: [f"No {field} {value!r}."]}},
        status=status.HTTP_400_BAD_REQUEST,
    )


def _launch_request(request, values: dict) -> LaunchRequest | Response:
    """The launch the body asks for, or a 400 naming what it names that does not exist.
    A run the user may not see is named as one that does not exist."""
    service = Service.objects.filter(slug=values["service"]).first()
    if service is None:
        return _not_found("service", values["service"])
    action = (
        Action.objects.select_related("playbook_version")
        .filter(service=service, slug=values["action"])
        .first()
    )
    if action is None:
        return _not_found("action", values["action"])
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
        reason=values["reason"],
        emergency_reason=values["emergency_reason"],
    )


@extend_schema(
    request=LaunchSerializer,
    responses={
        201: RunSerializer,
        400: ErrorSerializer,
        403: ErrorSerializer,
        409: ErrorSerializer,
        503: ErrorSerializer,
    },
)
@api_view(["POST"])
def run_create(request):
    """Launch an action: 201 with the run, or 400/403/409/503 with the reason (409 when
    another run holds the service's lock on the environment, with that run)."""
    data = LaunchSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    req = _launch_request(request, data.validated_data)
    if isinstance(req, Response):
        return req
    try:
        run = services.run_launch(req)
    except ParameterError as exc:
        return Response(
            {"detail": "Parameters do not fit the form.", "errors": {"parameters": exc.errors}},
            status=status.HTTP_400_BAD_REQUEST,
        )
    except services.LaunchRefused as exc:
        body = {"detail": exc.reason}
        if exc.holder is not None:
            body["lock"] = LockHolderSerializer(exc.holder).data
        if exc.missing is not None:
            body["missing"] = exc.missing
        if exc.field is not None and exc.status == 400:
            body["errors"] = {exc.field: [exc.reason]}
        return Response(body, status=exc.status)
    return Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)


def _run(request, run_id):
    """The run, if the user may see it; 404 alike for a hidden run and a missing one."""
    run = services.run_for(user=request.user, run_id=run_id, request=request, via=Via.API)
    if run is None:
        raise NotFound("No such run.")
    return run


@extend_schema(responses=RunSerializer)
@api_view(["GET"])
def run_detail(request, run_id: int):
    return Response(RunSerializer(_run(request, run_id)).data)


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


urlpatterns = [
    path("runs/", run_create, name="api-run-create"),
    path("runs/<int:run_id>/", run_detail, name="api-run-detail"),
    path("runs/<int:run_id>/events/", run_events, name="api-run-events"),
    path("runs/<int:run_id>/cancel/", run_cancel, name="api-run-cancel"),
]
