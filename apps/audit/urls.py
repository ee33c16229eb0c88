from django.urls import path

from apps.audit import views

app_name = "audit"
urlpatterns = [
    path("audit/", views.audit_list, name="list"),
    path("audit/export/", views.audit_export, name="export"),
    path("audit/verify/", views.audit_verify_now, name="verify"),
    path("audit/<int:event_id>/", views.audit_detail, name="detail"),
]
