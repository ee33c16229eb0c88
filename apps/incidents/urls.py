from django.urls import path

from apps.incidents import views

app_name = "incidents"
urlpatterns = [
    path("runs/<int:run_id>/incidents/", views.run_report, name="report"),
    path("incidents/<int:incident_id>/resolve/", views.incident_resolve_view, name="resolve"),
]
