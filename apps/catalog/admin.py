from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from apps.audit.admin import AuditedModelAdmin
from apps.audit.constants import Via
from apps.catalog.models import Action, PlaybookSource, PlaybookVersion, Service, SourceCommit
from apps.catalog.services import (
    action_snapshot,
    playbook_version_approve,
    playbook_version_audit_created,
    playbook_version_details,
    playbook_version_pin,
    source_sync,
)


class SourceCommitInline(admin.TabularInline):
    model = SourceCommit
    extra = 0
    can_delete = False
    fields = ("sha", "committed_at", "author", "message", "playbooks")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(PlaybookSource)
class PlaybookSourceAdmin(AuditedModelAdmin):
    audit_noun = "source"
    list_display = ("name", "url", "branch", "synced_at", "sync_error")
    readonly_fields = ("synced_at", "sync_error")
    inlines = [SourceCommitInline]
    actions = ["sync"]

    @admin.action(description="Sync: fetch commits and playbook files")
    def sync(self, request, queryset):
        for source in queryset:
            try:
                commits = source_sync(source=source, acting_user=request.user, via=Via.ADMIN)
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)
            else:
                head = ", ".join(commits[0].playbooks) if commits else ""
                self.message_user(
                    request, f"{source}: {len(commits)} commits; playbooks: {head or 'none'}."
                )


class PlaybookVersionAddForm(forms.ModelForm):
    class Meta:
        model = PlaybookVersion
        fields = ("source", "commit", "path")

    def clean(self):
        cleaned = super().clean()
        if not self.errors:
            # Resolve and hash now, so a bad commit or path is a message beside its field.
            sha, content_hash, lock = playbook_version_pin(
                source=cleaned["source"], commit=cleaned["commit"], path=cleaned["path"]
            )
            self.instance.commit, self.instance.content_hash = sha, content_hash
            self.instance.requirements = lock
            cleaned["commit"] = sha
        return cleaned


@admin.register(PlaybookVersion)
class PlaybookVersionAdmin(AuditedModelAdmin):
    audit_noun = "playbook_version"
    list_display = ("path", "source", "short_commit", "content_hash", "approved_by", "approved_at")
    list_filter = ("source", "approved_at")
    actions = ["approve"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return (
            "source",
            "commit",
            "path",
            "content_hash",
            "requirements",
            "approved_by",
            "approved_at",
        )

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = PlaybookVersionAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def audit_details(self, obj):
        return playbook_version_details(obj)

    def audit_saved(self, request, obj, *, before):
        if before is None:
            playbook_version_audit_created(version=obj, acting_user=request.user, via=Via.ADMIN)
        else:
            super().audit_saved(request, obj, before=before)

    @admin.display(description="commit")
    def short_commit(self, obj):
        return obj.commit[:10]

    @admin.action(description="Approve the selected versions")
    def approve(self, request, queryset):
        versions = list(queryset.filter(approved_at__isnull=True))
        for version in versions:
            playbook_version_approve(version=version, acting_user=request.user, via=Via.ADMIN)
        self.message_user(request, f"Approved {len(versions)} playbook version(s).")


class ActionAdminForm(forms.ModelForm):
    class Meta:
        model = Action
        fields = (
            "service", "slug", "label", "description", "kind", "playbook_version",
            "environments", "timeout", "form", "version_field", "position",
        )  # fmt: skip
        widgets = {"form": forms.Textarea(attrs={"rows": 14, "cols": 90})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "playbook_version" in self.fields:
            self.fields["playbook_version"].queryset = PlaybookVersion.objects.filter(
                approved_at__isnull=False
            )


@admin.register(Action)
class ActionAdmin(AuditedModelAdmin):
    form = ActionAdminForm
    list_display = ("label", "service", "kind", "playbook_version", "timeout")
    list_filter = ("service", "kind")
    filter_horizontal = ("environments",)
    prepopulated_fields = {"slug": ("label",)}

    # An action is what may run: its rows say what it runs, where and with which form.
    def audit_snapshot(self, obj):
        return action_snapshot(obj)

    def audit_details(self, obj):
        return action_snapshot(obj)

    def audit_scope(self, obj):
        return {"service": obj.service.slug}


class ActionInline(admin.TabularInline):
    model = Action
    extra = 0
    fields = ("label", "slug", "kind", "playbook_version")
    show_change_link = True
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Service)
class ServiceAdmin(AuditedModelAdmin):
    list_display = ("name", "slug", "team")
    list_filter = ("team",)
    prepopulated_fields = {"slug": ("name",)}
    inlines = [ActionInline]

    def audit_scope(self, obj):
        return {"service": obj.slug}
