from django.urls import path

from apps.catalog import views

app_name = "catalog"
urlpatterns = [
    path("", views.catalog, name="catalog"),
    path("services/<slug:service_slug>/", views.service_detail, name="service"),
]
