from django.urls import path

from apps.runs import views

app_name = "runs"
urlpatterns = [
    path(
        "services/<slug:service_slug>/<slug:action_slug>/<slug:environment_slug>/",
        views.run_form,
        name="form",
    ),
    path("runs/", views.run_list, name="list"),
    path("runs/<int:run_id>/", views.run_detail, name="detail"),
    path("runs/<int:run_id>/log/", views.run_log, name="log"),
    path("runs/<int:run_id>/log/earlier/", views.run_log_earlier, name="log_earlier"),
    path("runs/<int:run_id>/log/download/", views.run_log_download, name="log_download"),
    path("runs/<int:run_id>/cancel/", views.run_cancel, name="cancel"),
    path("runs/<int:run_id>/again/", views.run_again, name="again"),
]
