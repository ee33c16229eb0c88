from django.urls import path

from apps.incidents import api

urlpatterns = [path("alerts/", api.alerts, name="api-alerts")]
