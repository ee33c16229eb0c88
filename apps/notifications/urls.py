from django.urls import path

from apps.notifications import team_views, views

app_name = "notifications"
urlpatterns = [
    path("notifications/", views.subscription, name="mine"),
    path("teams/<slug:team_slug>/notifications/", team_views.team_channels, name="team"),
    path(
        "teams/<slug:team_slug>/notifications/<int:channel_id>/delete/",
        team_views.team_channel_delete,
        name="team_delete",
    ),
]
