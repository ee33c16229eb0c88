"""POST /api/v1/alerts/: monitoring opens and resolves incidents. It takes Prometheus
Alertmanager's webhook payload as it is, or a small JSON of its own; an alert names its
service and environment by labels (ALERT_SERVICE_LABEL, ALERT_ENVIRONMENT_LABEL)."""

from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import api_view, permission_classes
from rest_framework.response import Response

from apps.accounts.authentication import AlertsAccess
from apps.accounts.permissions import can_view
from apps.catalog.models import Service
from apps.environments.models import Environment
from apps.incidents.models import Incident
from apps.incidents.services import alert_opened, incident_resolve


class AlertSerializer(serializers.Serializer):
    """One alert: Alertmanager's (labels, annotations, fingerprint) or the small form."""

    status = serializers.ChoiceField(choices=["firing", "resolved"])
    labels = serializers.DictField(child=serializers.CharField(), required=False, default=dict)
    annotations = serializers.DictField(
        child=serializers.CharField(allow_blank=True), required=False, default=dict
    )
    fingerprint = serializers.CharField(max_length=200, required=False, allow_blank=True)
    generatorURL = serializers.URLField(required=False, allow_blank=True, max_length=500)
    service = serializers.SlugField(required=False)
    environment = serializers.SlugField(required=False)
    title = serializers.CharField(max_length=500, required=False, allow_blank=True)
    id = serializers.CharField(max_length=200, required=False, allow_blank=True)
    url = serializers.URLField(required=False, allow_blank=True, max_length=500)


class AlertsSerializer(serializers.Serializer):
    alerts = AlertSerializer(many=True, required=False)
    status = serializers.ChoiceField(choices=["firing", "resolved"], required=False)

    def validate(self, data):
        if "alerts" not in data:
            # The small form: one alert, its fields at the top.
            single = AlertSerializer(data=self.initial_data)
            single.is_valid(raise_exception=True)
            data["alerts"] = [single.validated_data]
        if not data["alerts"]:
            raise serializers.ValidationError({"alerts": ["No alert in it."]})
        return data


def _where(alert: dict) -> tuple[str, str]:
    labels = alert.get("labels") or {}
    service = alert.get("service") or labels.get(settings.ALERT_SERVICE_LABEL, "")
    environment = alert.get("environment") or labels.get(settings.ALERT_ENVIRONMENT_LABEL, "")
    return service, environment


def _title(alert: dict) -> str:
    notes, labels = alert.get("annotations") or {}, alert.get("labels") or {}
    return (
        alert.get("title")
        or notes.get("summary")
        or notes.get("description")
        or labels.get("alertname")
        or "Alert from monitoring"
    )


def _one(request, alert: dict) -> dict:
    slug, env_slug = _where(alert)
    service = Service.objects.filter(slug=slug).first() if slug else None
    environment = Environment.objects.filter(slug=env_slug).first() if env_slug else None
    if (
        service is None
        or environment is None
        or not can_view(request.user, service=service, environment=environment)
    ):
        return {"ignored": f"No service {slug!r} on environment {env_slug!r} you may see."}
    key = f"{slug}/{env_slug}/" + (alert.get("fingerprint") or alert.get("id") or _title(alert))
    if alert["status"] == "firing":
        link = alert.get("url") or alert.get("generatorURL") or ""
        incident = alert_opened(service=service, environment=environment, title=_title(alert),
                                key=key, link=link, user=request.user)  # fmt: skip
        return {"opened": incident.pk}
    found = Incident.objects.filter(alert_key=key, resolved_at__isnull=True).first()
    if found is None:
        return {"ignored": "No open incident for this alert."}
    incident_resolve(incident=found, actor=request.user, note="The alert resolved.", via="api")
    return {"resolved": found.pk}


@extend_schema(
    request=AlertsSerializer,
    responses={
        200: inline_serializer(
            "AlertsAnswer",
            {"results": serializers.ListField(child=serializers.DictField())},
        ),
        400: inline_serializer("AlertsError", {"detail": serializers.CharField()}),
    },
    description="Monitoring opens incidents (a firing alert, against what runs there now) "
    "and resolves them (the alert resolved). Alertmanager's webhook payload, or "
    '`{"status": "firing"|"resolved", "service", "environment", "title", "id", "url"}`. '
    "Needs a token with the `alerts` scope.",
)
@api_view(["POST"])
@permission_classes([AlertsAccess])
def alerts(request):
    data = AlertsSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    results = [_one(request, alert) for alert in data.validated_data["alerts"]]
    return Response({"results": results}, status=status.HTTP_200_OK)
