"""The catalog's pages, under the "catalog" namespace (catalog:catalog, catalog:service)."""

from django.urls import path

from apps.insights import catalog_views

app_name = "catalog"
urlpatterns = [
    path("", catalog_views.catalog, name="catalog"),
    path("services/<slug:service_slug>/", catalog_views.service_detail, name="service"),
]
