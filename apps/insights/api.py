"""What runs where, for CI and scripts: GET /api/v1/environments/ and, per service,
GET /api/v1/services/<slug>/environments/; the workers and queues: GET /api/v1/workers/."""

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.response import Response

from apps.accounts.permissions import can_see_workers, can_view, environment_filter
from apps.catalog.selectors import service_list
from apps.environments.models import Environment
from apps.environments.selectors import active_locks, freeze_in_force
from apps.insights.dora_views import insights_api
from apps.insights.workers import workers_overview
from apps.insights.workers_views import REFUSED
from apps.runs.selectors.deployments import matrix, previous_environment
from apps.workers.selectors import live_queues


class RunRefSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    url = serializers.CharField(source="get_absolute_url")
    action = serializers.CharField(source="action_slug")
    status = serializers.CharField()
    version = serializers.CharField()
    requested_by = serializers.CharField(source="requested_by_name")
    finished_at = serializers.DateTimeField(allow_null=True)


class DeploymentSerializer(serializers.Serializer):
    """A service on an environment: what runs there and how it got there."""

    service = serializers.CharField()
    environment = serializers.CharField()
    version = serializers.CharField(allow_null=True)
    deployed_by = serializers.CharField(allow_null=True)
    deployed_at = serializers.DateTimeField(allow_null=True)
    playbook_commit = serializers.CharField(allow_null=True)
    run = RunRefSerializer(allow_null=True, help_text="The run that put the version there.")
    last_run = RunRefSerializer(allow_null=True, help_text="The latest run there (no dry runs).")
    verified = serializers.BooleanField(help_text="The version was verified on this environment.")
    drift = serializers.BooleanField(
        help_text="The version was never verified on the environment before this one."
    )


class LockSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    service = serializers.CharField(source="service.slug", allow_null=True)
    reason = serializers.CharField()
    locked_by = serializers.CharField(source="created_by_name")
    expires_at = serializers.DateTimeField()


class FreezeSerializer(serializers.Serializer):
    name = serializers.CharField(source="window.name")
    reason = serializers.CharField()
    until = serializers.DateTimeField()


class EnvironmentSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    order = serializers.IntegerField()
    previous = serializers.CharField(allow_null=True)
    require_verified = serializers.BooleanField()
    auto_promote = serializers.BooleanField()
    confirm_runs = serializers.BooleanField()
    queue = serializers.CharField(help_text="The Celery queue its runs go to.")
    worker_live = serializers.BooleanField(
        help_text="At least one live worker consumes its queue (else a launch there is refused)."
    )
    locks = LockSerializer(many=True)
    freeze = FreezeSerializer(allow_null=True)
    services = DeploymentSerializer(many=True)


def _deployment(service, cell) -> dict:
    run = cell.current
    return {
        "service": service.slug,
        "environment": cell.environment.slug,
        "version": run.version if run else None,
        "deployed_by": run.requested_by_name if run else None,
        "deployed_at": run.finished_at if run else None,
        "playbook_commit": run.playbook_commit if run else None,
        "run": run,
        "last_run": cell.last,
        "verified": cell.verified_here is not None,
        "drift": cell.drift,
    }


@extend_schema(responses=EnvironmentSerializer(many=True))
@api_view(["GET"])
def environment_list(request):
    """Environments in promotion order, with their locks, the freeze in force, and what
    runs there: each service's version, who deployed it and when, drift."""
    user = request.user
    environments = list(Environment.objects.filter(environment_filter(user)))
    services = list(service_list(user=user))
    cells = matrix(services=services, environments=environments)
    queues = live_queues()
    body = []
    for index, env in enumerate(environments):
        body.append(
            {
                "slug": env.slug,
                "name": env.name,
                "order": env.order,
                "previous": getattr(previous_environment(env), "slug", None),
                "require_verified": env.require_verified,
                "auto_promote": env.auto_promote,
                "confirm_runs": env.confirm_runs,
                "queue": env.queue,
                "worker_live": bool(queues.get(env.queue)),
                "locks": [
                    lock
                    for lock in active_locks(environment=env).select_related("service")
                    if lock.service is None or can_view(user, service=lock.service, environment=env)
                ],
                "freeze": freeze_in_force(env),
                "services": [
                    _deployment(service, cells[service.pk][index])
                    for service in services
                    if can_view(user, service=service, environment=env)
                ],
            }
        )
    return Response(EnvironmentSerializer(body, many=True).data)


@extend_schema(responses=DeploymentSerializer(many=True))
@api_view(["GET"])
def service_environments(request, service_slug: str):
    """One service on each environment the caller may see, in promotion order."""
    service = service_list(user=request.user).filter(slug=service_slug).first()
    if service is None:
        raise NotFound(f"No service {service_slug!r}.")
    environments = list(Environment.objects.all())
    cells = matrix(services=[service], environments=environments)[service.pk]
    return Response(
        DeploymentSerializer(
            [
                _deployment(service, cell)
                for cell in cells
                if can_view(request.user, service=service, environment=cell.environment)
            ],
            many=True,
        ).data
    )


class WorkerRunSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    url = serializers.CharField(source="get_absolute_url")
    service = serializers.CharField(source="service.slug")
    environment = serializers.CharField(source="environment.slug")
    action = serializers.CharField(source="action_slug")
    started_at = serializers.DateTimeField(allow_null=True)


class WorkerSerializer(serializers.Serializer):
    hostname = serializers.CharField(source="state.worker.hostname")
    state = serializers.ChoiceField(
        source="state.state",
        choices=["live", "silent", "stopped"],
        help_text="silent: no heartbeat for WORKER_SILENT_AFTER_SECONDS; stopped: shut down.",
    )
    queues = serializers.ListField(child=serializers.CharField(), source="state.worker.queues")
    concurrency = serializers.IntegerField(source="state.worker.concurrency")
    pid = serializers.IntegerField(source="state.worker.pid", allow_null=True)
    pushbutton_version = serializers.CharField(source="state.worker.pushbutton_version")
    ansible_core_version = serializers.CharField(source="state.worker.ansible_core_version")
    started_at = serializers.DateTimeField(source="state.worker.started_at")
    last_seen_at = serializers.DateTimeField(
        source="state.worker.last_seen_at", help_text="Its last heartbeat."
    )
    silent_since = serializers.DateTimeField(source="state.silent_since", allow_null=True)
    stopped_at = serializers.DateTimeField(source="state.worker.stopped_at", allow_null=True)
    runs = WorkerRunSerializer(many=True, help_text="The runs it has now.")


class QueueSerializer(serializers.Serializer):
    environment = serializers.CharField(source="environment.slug")
    queue = serializers.CharField()
    live = serializers.BooleanField(help_text="At least one live worker consumes the queue.")
    live_workers = serializers.IntegerField()
    waiting = serializers.IntegerField(
        help_text="Its runs waiting: queued for a worker, or in the deploy queue."
    )


class HousekeepingSerializer(serializers.Serializer):
    queue = serializers.CharField()
    live_workers = serializers.IntegerField()


class WorkersSerializer(serializers.Serializer):
    workers = WorkerSerializer(many=True)
    environments = QueueSerializer(many=True)
    housekeeping = HousekeepingSerializer(
        help_text="The queue of the reaper, schedules, follow-ups and notifications."
    )


class WorkersErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


@extend_schema(responses={200: WorkersSerializer, 403: WorkersErrorSerializer})
@api_view(["GET"])
def worker_list(request):
    """The workers (live first; silent and stopped ones too) with their queues, versions,
    last heartbeat and the runs they have now; each environment's queue, whether a live
    worker consumes it, and how many runs wait there; the housekeeping queue's live
    workers. Ops and auditors only."""
    if not can_see_workers(request.user):
        raise PermissionDenied(REFUSED)
    workers, queues, housekeeping = workers_overview()
    return Response(
        WorkersSerializer(
            {"workers": workers, "environments": queues, "housekeeping": housekeeping}
        ).data
    )


urlpatterns = [
    path("environments/", environment_list, name="api-environments"),
    path("insights/", insights_api, name="api-insights"),
    path("workers/", worker_list, name="api-workers"),
    path(
        "services/<slug:service_slug>/environments/",
        service_environments,
        name="api-service-environments",
    ),
]
