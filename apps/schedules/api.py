"""Schedules through the API: list and create them, read one with its next and recent
firings, pause, resume or delete it. Each call goes to the same services as the pages."""

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.response import Response

from apps.audit.constants import Via
from apps.catalog.models import Action, Service
from apps.environments.models import Environment
from apps.schedules import selectors, services
from apps.schedules.constants import (
    EXPRESSION_MAX_CHARS,
    NAME_MAX_CHARS,
    Outcome,
    Recurrence,
    WhenBusy,
)
from apps.schedules.models import Schedule


class FiringSerializer(serializers.Serializer):
    due_at = serializers.DateTimeField()
    fired_at = serializers.DateTimeField()
    outcome = serializers.ChoiceField(choices=Outcome.choices)
    reason = serializers.CharField()
    run = serializers.IntegerField(source="run_id", allow_null=True)


class ScheduleSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    url = serializers.CharField(source="get_absolute_url")
    name = serializers.CharField()
    service = serializers.CharField(source="service.slug")
    action = serializers.CharField(source="action.slug")
    environment = serializers.CharField(source="environment.slug")
    parameters = serializers.JSONField(help_text="Secret values masked.")
    kind = serializers.ChoiceField(choices=Recurrence.choices)
    expression = serializers.CharField()
    time_zone = serializers.CharField()
    when_busy = serializers.ChoiceField(choices=WhenBusy.choices)
    paused = serializers.BooleanField()
    runs_as = serializers.CharField(source="owner_name")
    next_due_at = serializers.DateTimeField(allow_null=True)


class ScheduleDetailSerializer(ScheduleSerializer):
    next_firings = serializers.ListField(
        child=serializers.DateTimeField(), help_text="The next five, in its time zone."
    )
    firings = FiringSerializer(many=True, help_text="The recent ones, newest first.")


class ScheduleCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=NAME_MAX_CHARS)
    service = serializers.SlugField()
    action = serializers.SlugField()
    environment = serializers.SlugField()
    parameters = serializers.JSONField(required=False, default=dict)
    kind = serializers.ChoiceField(choices=Recurrence.choices)
    expression = serializers.CharField(max_length=EXPRESSION_MAX_CHARS)
    time_zone = serializers.CharField(max_length=64, help_text="IANA, e.g. Europe/Berlin.")
    when_busy = serializers.ChoiceField(
        choices=WhenBusy.choices, required=False, default=WhenBusy.SKIP
    )


class ScheduleErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    errors = serializers.DictField(required=False)


def _invalid(exc: services.ScheduleInvalid) -> Response:
    errors = dict(exc.errors)
    if exc.parameter_errors:
        errors["parameters"] = exc.parameter_errors
    return Response(
        {"detail": "Invalid input.", "errors": errors}, status=status.HTTP_400_BAD_REQUEST
    )


def _schedule(request, schedule_id: int, *, manage: bool = False) -> Schedule:
    schedule = (
        Schedule.objects.select_related("service", "action", "environment")
        .filter(pk=schedule_id)
        .first()
    )
    if schedule is None or not selectors.can_view_schedule(request.user, schedule):
        raise NotFound("No such schedule.")
    if manage and (why := selectors.manage_refusal_reason(request.user, schedule)):
        raise PermissionDenied(why)
    return schedule


def _detail(schedule: Schedule) -> dict:
    data = ScheduleSerializer(schedule).data
    data["next_firings"] = [at.isoformat() for at in selectors.schedule_next_firings(schedule)]
    recent = selectors.schedule_recent_firings(schedule)
    data["firings"] = FiringSerializer(recent, many=True).data
    return data


@extend_schema(
    methods=["GET"],
    responses={200: ScheduleSerializer(many=True)},
    description="The schedules you may see.",
)
@extend_schema(
    methods=["POST"],
    request=ScheduleCreateSerializer,
    responses={201: ScheduleDetailSerializer, 400: ScheduleErrorSerializer},
    description=(
        "Schedule an action: it runs as you, with your rights at each firing. 400 with a "
        "message per field (an invalid cron expression or RRULE, an unknown time zone, "
        "parameters that do not fit the action's form, an environment you may not run it on)."
    ),
)
@api_view(["GET", "POST"])
def schedule_list(request):
    if request.method == "GET":
        found = selectors.schedule_list(user=request.user)
        return Response(ScheduleSerializer(found, many=True).data)
    data = ScheduleCreateSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    values = data.validated_data
    service = Service.objects.filter(slug=values["service"]).first()
    action = Action.objects.filter(service=service, slug=values["action"]).first()
    try:
        schedule = services.schedule_create(
            data=services.ScheduleInput(
                name=values["name"],
                service=service,
                action=action,
                environment=Environment.objects.filter(slug=values["environment"]).first(),
                kind=values["kind"],
                expression=values["expression"],
                time_zone=values["time_zone"],
                when_busy=values["when_busy"],
                parameters=values["parameters"],
            ),
            acting_user=request.user,
            via=Via.API,
            request=request,
        )
    except services.ScheduleInvalid as exc:
        return _invalid(exc)
    return Response(_detail(schedule), status=status.HTTP_201_CREATED)


@extend_schema(methods=["GET"], responses={200: ScheduleDetailSerializer})
@extend_schema(methods=["DELETE"], responses={204: None})
@api_view(["GET", "DELETE"])
def schedule_detail(request, schedule_id: int):
    if request.method == "GET":
        return Response(_detail(_schedule(request, schedule_id)))
    schedule = _schedule(request, schedule_id, manage=True)
    services.schedule_delete(
        schedule=schedule, acting_user=request.user, via=Via.API, request=request
    )
    return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(request=None, responses={200: ScheduleDetailSerializer})
@api_view(["POST"])
def schedule_pause(request, schedule_id: int):
    schedule = _schedule(request, schedule_id, manage=True)
    services.schedule_pause(
        schedule=schedule, acting_user=request.user, via=Via.API, request=request
    )
    return Response(_detail(schedule))


@extend_schema(request=None, responses={200: ScheduleDetailSerializer})
@api_view(["POST"])
def schedule_resume(request, schedule_id: int):
    schedule = _schedule(request, schedule_id, manage=True)
    services.schedule_resume(
        schedule=schedule, acting_user=request.user, via=Via.API, request=request
    )
    return Response(_detail(schedule))


urlpatterns = [
    path("schedules/", schedule_list, name="api-schedules"),
    path("schedules/<int:schedule_id>/", schedule_detail, name="api-schedule"),
    path("schedules/<int:schedule_id>/pause/", schedule_pause, name="api-schedule-pause"),
    path("schedules/<int:schedule_id>/resume/", schedule_resume, name="api-schedule-resume"),
]
