from django.contrib import admin

from apps.environments.models import Environment


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "order", "queue")
    prepopulated_fields = {"slug": ("name",)}
    ordering = ("order",)
