"""Locks through the API: take one, list them, release one."""

import datetime

from django.core.exceptions import ValidationError
from django.urls import path
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from apps.accounts.permissions import can_view, environment_filter
from apps.audit.constants import Via
from apps.catalog.models import Service
from apps.environments import selectors, services
from apps.environments.constants import LOCK_MAX_DAYS, REASON_MAX_CHARS
from apps.environments.models import Environment, EnvironmentLock


class EnvironmentLockSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    environment = serializers.CharField(source="environment.slug")
    service = serializers.CharField(source="service.slug", allow_null=True, default=None)
    reason = serializers.CharField()
    expires_at = serializers.DateTimeField()
    locked_by = serializers.CharField(source="created_by_name")
    created_at = serializers.DateTimeField()
    released_at = serializers.DateTimeField(allow_null=True)
    released_by = serializers.CharField(source="released_by_name")
    active = serializers.SerializerMethodField()
    message = serializers.SerializerMethodField(help_text="What a user stopped by it reads.")

    def get_active(self, lock) -> bool:
        return lock.is_active()

    def get_message(self, lock) -> str:
        return selectors.lock_reason(lock)


class EnvironmentLockCreateSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=REASON_MAX_CHARS)
    expires_at = serializers.DateTimeField(required=False, help_text="Or `minutes`.")
    minutes = serializers.IntegerField(
        required=False, min_value=1, max_value=LOCK_MAX_DAYS * 24 * 60, help_text="Or `expires_at`."
    )
    service = serializers.SlugField(
        required=False, allow_null=True, help_text="Lock only this service (default: all)."
    )

    def validate(self, data):
        if ("expires_at" in data) == ("minutes" in data):
            message = "Give either expires_at or minutes (how long the lock lasts)."
            raise serializers.ValidationError({"expires_at": [message], "minutes": [message]})
        return data


class LockErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    errors = serializers.DictField(required=False)


def _environment(request, slug, *, seen: bool = True) -> Environment:
    environments = Environment.objects.filter(slug=slug)
    if seen:
        environments = environments.filter(environment_filter(request.user))
    environment = environments.first()
    if environment is None:
        raise NotFound(f"No environment {slug!r}.")
    return environment


def _visible(user, lock) -> bool:
    return lock.service_id is None or can_view(
        user, service=lock.service, environment=lock.environment
    )


@extend_schema(
    methods=["GET"],
    responses={200: EnvironmentLockSerializer(many=True)},
    description="Locks holding now.",
)
@extend_schema(
    methods=["POST"],
    request=EnvironmentLockCreateSerializer,
    responses={201: EnvironmentLockSerializer, 400: LockErrorSerializer, 403: LockErrorSerializer},
    description=(
        "Lock the environment (or one service there) until `expires_at`, or for `minutes`: "
        "no run starts there until it expires or is released. 403 with the reason when "
        "you may not (Ops, or a team that may run it there)."
    ),
)
@api_view(["GET", "POST"])
def locks(request, environment_slug: str):
    # Locking where one may not is refused (and recorded) by the service, with the reason.
    environment = _environment(request, environment_slug, seen=request.method == "GET")
    if request.method == "GET":
        found = [
            lock
            for lock in selectors.active_locks(environment=environment)
            if _visible(request.user, lock)
        ]
        return Response(EnvironmentLockSerializer(found, many=True).data)
    data = EnvironmentLockCreateSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    values = data.validated_data
    service = None
    if values.get("service"):
        service = Service.objects.filter(slug=values["service"]).first()
        if service is None:
            message = f"No service {values['service']!r}."
            return Response(
                {"detail": message, "errors": {"service": [message]}},
                status=status.HTTP_400_BAD_REQUEST,
            )
    expires_at = values.get("expires_at") or timezone.now() + datetime.timedelta(
        minutes=values.get("minutes") or 0
    )
    try:
        lock = services.lock_create(
            user=request.user,
            environment=environment,
            service=service,
            reason=values["reason"],
            expires_at=expires_at,
            via=Via.API,
            request=request,
        )
    except services.LockRefused as exc:
        return Response({"detail": exc.reason}, status=exc.status)
    except ValidationError as exc:
        return Response(
            {"detail": "Invalid input.", "errors": exc.message_dict},
            status=status.HTTP_400_BAD_REQUEST,
        )
    return Response(EnvironmentLockSerializer(lock).data, status=status.HTTP_201_CREATED)


def _lock(request, environment_slug, lock_id) -> EnvironmentLock:
    environment = _environment(request, environment_slug)
    lock = (
        EnvironmentLock.objects.select_related("environment", "service")
        .filter(environment=environment, pk=lock_id)
        .first()
    )
    if lock is None or not _visible(request.user, lock):
        raise NotFound("No such lock.")
    return lock


def _release(request, lock) -> Response:
    try:
        lock = services.lock_release(lock=lock, user=request.user, via=Via.API, request=request)
    except services.LockRefused as exc:
        return Response({"detail": exc.reason}, status=exc.status)
    return Response(EnvironmentLockSerializer(lock).data)


@extend_schema(
    methods=["GET"],
    responses={200: EnvironmentLockSerializer},
    description="One lock, holding or not.",
)
@extend_schema(
    methods=["DELETE"],
    request=None,
    responses={200: EnvironmentLockSerializer, 403: LockErrorSerializer, 409: LockErrorSerializer},
    description="Release the lock (its owner or Ops); 409 when it has ended already.",
)
@api_view(["GET", "DELETE"])
def lock_detail(request, environment_slug: str, lock_id: int):
    lock = _lock(request, environment_slug, lock_id)
    if request.method == "GET":
        return Response(EnvironmentLockSerializer(lock).data)
    return _release(request, lock)


@extend_schema(
    request=None,
    responses={200: EnvironmentLockSerializer, 403: LockErrorSerializer, 409: LockErrorSerializer},
    description="Release the lock (its owner or Ops); 409 when it has ended already.",
)
@api_view(["POST"])
def lock_unlock(request, environment_slug: str, lock_id: int):
    return _release(request, _lock(request, environment_slug, lock_id))


urlpatterns = [
    path("environments/<slug:environment_slug>/locks/", locks, name="api-locks"),
    path(
        "environments/<slug:environment_slug>/locks/<int:lock_id>/",
        lock_detail,
        name="api-lock-detail",
    ),
    path(
        "environments/<slug:environment_slug>/locks/<int:lock_id>/unlock/",
        lock_unlock,
        name="api-lock-unlock",
    ),
]
