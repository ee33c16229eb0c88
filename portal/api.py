"""API wiring under /api/v1/ and the error shape every endpoint shares."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc, context):
    """Errors are JSON: {"detail": reason} and, for bad input, {"errors": {field: [messages]}}."""
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "detail" not in response.data:
        response.data = {"detail": "Invalid input.", "errors": response.data}
    elif response is not None and isinstance(response.data, list):
        response.data = {"detail": " ".join(str(m) for m in response.data)}
    return response


urlpatterns = [
    path("", include("apps.catalog.api")),
    path("", include("apps.runs.api")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
]
