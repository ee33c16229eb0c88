from django.urls import path

from apps.insights import dora_views, views, workers_views

app_name = "insights"
urlpatterns = [
    path("what-runs-where/", views.what_runs_where, name="matrix"),
    path("insights/", dora_views.insights_page, name="dora"),
    path("workers/", workers_views.workers_page, name="workers"),
]
