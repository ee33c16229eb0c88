from django.urls import path

from apps.environments import views

app_name = "environments"
urlpatterns = [
    path("environments/<slug:environment_slug>/lock/", views.lock_form, name="lock"),
    path("locks/<int:lock_id>/unlock/", views.lock_release, name="unlock"),
]
