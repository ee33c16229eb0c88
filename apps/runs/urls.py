from django.urls import path

from apps.runs import views

app_name = "runs"
urlpatterns = [
    path(
        "services/<slug:service_slug>/<slug:action_slug>/<slug:environment_slug>/",
        views.run_form,
        name="form",
    ),
    path(
        "services/<slug:service_slug>/environments/<slug:environment_slug>/promote/",
        views.promote,
        name="promote",
    ),
    path(
        "services/<slug:service_slug>/environments/<slug:environment_slug>/rollback/",
        views.rollback,
        name="rollback",
    ),
    path("runs/", views.run_list, name="list"),
    path("runs/<int:run_id>/", views.run_detail, name="detail"),
    path("runs/<int:run_id>/log/", views.run_log, name="log"),
    path("runs/<int:run_id>/log/earlier/", views.run_log_earlier, name="log_earlier"),
    path("runs/<int:run_id>/log/download/", views.run_log_download, name="log_download"),
    path("runs/<int:run_id>/log/later/", views.run_log_later, name="log_later"),
    path("runs/<int:run_id>/log/window/", views.run_log_window, name="log_window"),
    path("runs/<int:run_id>/log/search/", views.run_log_search, name="log_search"),
    path("runs/<int:run_id>/cancel/", views.run_cancel, name="cancel"),
    path("runs/<int:run_id>/again/", views.run_again, name="again"),
    path("runs/<int:run_id>/follow-ups/", views.run_follow_ups, name="follow_ups"),
]
