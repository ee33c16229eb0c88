from django.urls import path

from apps.notifications import views

app_name = "notifications"
urlpatterns = [path("notifications/", views.subscription, name="mine")]
