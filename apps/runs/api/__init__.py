"""The runs API under /api/v1/: launch (with an Idempotency-Key and the build's provenance),
list, read, events, cancel; promote and roll back as the service page does."""

from django.urls import path

from apps.runs.api import promotion, runs

urlpatterns = [
    path("runs/", runs.runs, name="api-runs"),
    path("runs/<int:run_id>/", runs.run_detail, name="api-run-detail"),
    path("runs/<int:run_id>/events/", runs.run_events, name="api-run-events"),
    path("runs/<int:run_id>/cancel/", runs.run_cancel, name="api-run-cancel"),
    path(
        "services/<slug:service_slug>/environments/<slug:environment_slug>/promote/",
        promotion.promote,
        name="api-promote",
    ),
    path(
        "services/<slug:service_slug>/environments/<slug:environment_slug>/rollback/",
        promotion.rollback,
        name="api-rollback",
    ),
]
