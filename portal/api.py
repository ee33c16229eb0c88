"""API wiring under /api/v1/ and the error shape every endpoint shares."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.views import exception_handler as drf_exception_handler

from apps.accounts.services import refusal_record
from apps.audit.constants import Via


def exception_handler(exc, context):
    """Errors are JSON: {"detail": reason} and, for bad input, {"errors": {field: [messages]}}."""
    response = drf_exception_handler(exc, context)
    if response is not None and response.status_code == 403 and context.get("request"):
        # Every refusal is kept in the audit log, with the reason the answer gives.
        request = context["request"]
        reason = str(response.data.get("detail", "")) if isinstance(response.data, dict) else ""
        refusal_record(user=request.user, reason=reason, request=request, via=Via.API)
    if response is not None and isinstance(response.data, dict) and "detail" not in response.data:
        response.data = {"detail": "Invalid input.", "errors": response.data}
    elif response is not None and isinstance(response.data, list):
        response.data = {"detail": " ".join(str(m) for m in response.data)}
    return response


urlpatterns = [
    path("", include("apps.catalog.api")),
    path("", include("apps.runs.api")),
    path("", include("apps.audit.api")),
    path("", include("apps.accounts.api")),
    path("", include("apps.environments.api")),
    path("", include("apps.insights.api")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
]
