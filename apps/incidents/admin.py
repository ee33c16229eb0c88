"""Incidents in the admin: read, for Ops and auditors (they are opened and resolved on
the pages and through the alerts API, each audited)."""

from django.contrib import admin

from apps.incidents.models import Incident


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    list_display = ("id", "title", "service", "environment", "version", "source", "opened_at",
                    "resolved_at")  # fmt: skip
    list_filter = ("source", "environment", "service")
    search_fields = ("title", "version")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
