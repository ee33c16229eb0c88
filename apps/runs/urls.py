from django.urls import path

from apps.runs.views import detail, launching, lists, log, promotion

app_name = "runs"
urlpatterns = [
    path(
        "services/<slug:service_slug>/<slug:action_slug>/<slug:environment_slug>/",
        launching.run_form,
        name="form",
    ),
    path(
        "services/<slug:service_slug>/environments/<slug:environment_slug>/promote/",
        promotion.promote,
        name="promote",
    ),
    path(
        "services/<slug:service_slug>/environments/<slug:environment_slug>/rollback/",
        promotion.rollback,
        name="rollback",
    ),
    path("runs/", lists.run_list, name="list"),
    path("runs/<int:run_id>/", detail.run_detail, name="detail"),
    path("runs/<int:run_id>/log/", log.run_log, name="log"),
    path("runs/<int:run_id>/log/earlier/", log.run_log_earlier, name="log_earlier"),
    path("runs/<int:run_id>/log/download/", log.run_log_download, name="log_download"),
    path("runs/<int:run_id>/log/later/", log.run_log_later, name="log_later"),
    path("runs/<int:run_id>/log/window/", log.run_log_window, name="log_window"),
    path("runs/<int:run_id>/log/search/", log.run_log_search, name="log_search"),
    path("runs/<int:run_id>/log/search/count/", log.run_log_search_count, name="log_search_count"),
    path("runs/<int:run_id>/cancel/", detail.run_cancel, name="cancel"),
    path("runs/<int:run_id>/again/", detail.run_again, name="again"),
    path("runs/<int:run_id>/follow-ups/", detail.run_follow_ups, name="follow_ups"),
]
