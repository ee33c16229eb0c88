from django.urls import path

from apps.insights import views

app_name = "insights"
urlpatterns = [path("what-runs-where/", views.what_runs_where, name="matrix")]
