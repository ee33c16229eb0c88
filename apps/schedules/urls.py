from django.urls import path

from apps.schedules import views

app_name = "schedules"

urlpatterns = [
    path("schedules/", views.schedule_list, name="list"),
    path("schedules/new/", views.schedule_new, name="new"),
    path(
        "schedules/new/<slug:service_slug>/<slug:action_slug>/<slug:environment_slug>/",
        views.schedule_create,
        name="create",
    ),
    path("schedules/<int:schedule_id>/", views.schedule_detail, name="detail"),
    path("schedules/<int:schedule_id>/edit/", views.schedule_edit, name="edit"),
    path("schedules/<int:schedule_id>/pause/", views.schedule_pause, name="pause"),
    path("schedules/<int:schedule_id>/resume/", views.schedule_resume, name="resume"),
    path("schedules/<int:schedule_id>/delete/", views.schedule_delete, name="delete"),
]
