from django.contrib import admin

from apps.workers.models import Worker


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
    """Read only: workers write their own rows (the workers page shows them best)."""

    list_display = ("hostname", "queues", "concurrency", "last_seen_at", "stopped_at")
    search_fields = ("hostname",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
