"""Schedules in the admin, for Ops: to see every schedule and its firings, and to pause,
resume or delete one (through the services, audited). They are made and changed on
their page, by whoever they will run as."""

from django.contrib import admin, messages

from apps.audit.constants import Via
from apps.schedules import services
from apps.schedules.models import Firing, Schedule


@admin.register(Firing)
class FiringAdmin(admin.ModelAdmin):
    """Every firing, read only: what each schedule did, and why not when it did not."""

    list_display = ("schedule", "due_at", "outcome", "run", "reason")
    list_filter = ("outcome",)
    search_fields = ("schedule__name", "reason")
    list_select_related = ("schedule", "run")
    readonly_fields = ("schedule", "due_at", "fired_at", "outcome", "reason", "run")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    list_display = (
        "name", "service", "action", "environment", "expression", "time_zone", "owner_name",
        "paused", "next_due_at",
    )  # fmt: skip
    list_filter = ("paused", "environment", "service")
    search_fields = ("name", "owner_name", "service__slug")
    readonly_fields = (
        "name", "service", "action", "environment", "kind", "expression", "time_zone",
        "when_busy", "parameters", "paused", "owner", "owner_name", "created_at",
        "updated_at", "next_due_at",
    )  # fmt: skip
    exclude = ("secret_parameters",)
    actions = ["pause", "resume"]

    def has_add_permission(self, request):
        return False  # on the schedules page, by whom it will run as

    @admin.action(description="Pause the selected schedules", permissions=["change"])
    def pause(self, request, queryset):
        for schedule in queryset.filter(paused=False):
            services.schedule_pause(
                schedule=schedule, acting_user=request.user, via=Via.ADMIN, request=request
            )
        messages.success(request, "Paused.")

    @admin.action(description="Resume the selected schedules", permissions=["change"])
    def resume(self, request, queryset):
        for schedule in queryset.filter(paused=True):
            services.schedule_resume(
                schedule=schedule, acting_user=request.user, via=Via.ADMIN, request=request
            )
        messages.success(request, "Resumed.")

    def delete_model(self, request, obj):
        services.schedule_delete(
            schedule=obj, acting_user=request.user, via=Via.ADMIN, request=request
        )

    def delete_queryset(self, request, queryset):
        for schedule in queryset:
            self.delete_model(request, schedule)
