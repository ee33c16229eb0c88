"""API wiring under /api/v1/ and the error shape every endpoint shares."""

from django.core.exceptions import SuspiciousOperation
from django.http import JsonResponse
from django.urls import include, path
from django.views import defaults
from drf_spectacular.views import SpectacularAPIView
from rest_framework.exceptions import ParseError
from rest_framework.views import exception_handler as drf_exception_handler

from apps.accounts.services import refusal_record
from apps.audit.constants import Via
from portal.middleware import input_error_reason


def _input_error(exc: Exception) -> ParseError | None:
    """The 400 for an error that only input the API could not take can cause."""
    if isinstance(exc, SuspiciousOperation):  # too big a body, too many fields
        return ParseError(str(exc) or "The request is malformed.")
    reason = input_error_reason(exc)
    return ParseError(reason) if reason else None


def exception_handler(exc, context):
    """Errors are JSON: {"detail": reason} and, for bad input, {"errors": {field: [messages]}}.
    No input is answered with a 500: what the API could not read is a 400 with the reason."""
    exc = _input_error(exc) or exc
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


# Errors Django answers itself (no view reached): JSON under /api/, pages elsewhere.
def bad_request(request, exception):
    """handler400: a request Django refused before any view (too many fields, a bad Host)."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "The request is malformed."}, status=400)
    return defaults.bad_request(request, exception)


def not_found(request, exception):
    """handler404: under /api/, a path that matches no endpoint."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "No such API endpoint."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    """handler500."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Server error."}, status=500)
    return defaults.server_error(request)


urlpatterns = [
    path("", include("apps.catalog.api")),
    path("", include("apps.runs.api")),
    path("", include("apps.audit.api")),
    path("", include("apps.accounts.api")),
    path("", include("apps.environments.api")),
    path("", include("apps.insights.api")),
    path("", include("apps.incidents.urls_api")),
    path("", include("apps.schedules.api")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
]
