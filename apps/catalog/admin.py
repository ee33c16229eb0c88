from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from apps.audit.admin import AuditedModelAdmin
from apps.audit.constants import Via
from apps.catalog.forms import (
    FormDefinitionField,
    FormEditorWidget,
    form_editor_rows,
    form_preview,
    located,
)
from apps.catalog.models import Action, PlaybookSource, PlaybookVersion, Service, SourceCommit
from apps.catalog.parameters import form_definition_errors
from apps.catalog.services import (
    action_snapshot,
    playbook_version_approve,
    playbook_version_audit_created,
    playbook_version_details,
    playbook_version_pin,
)
from apps.catalog.upgrades import (
    action_version_history,
    diff_lines,
    playbook_version_approve_and_move,
    playbook_version_review,
    source_sync_enqueue,
    source_sync_report,
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
    list_display = ("name", "url", "branch", "sync_status", "sync_finished_at", "sync_message")
    fields = (
        "name", "url", "branch", "sync_status", "sync_finished_at", "sync_message", "waiting",
        "sync_error", "synced_at", "sync_head",
    )  # fmt: skip
    readonly_fields = (
        "sync_status", "sync_finished_at", "sync_message", "waiting", "sync_error", "synced_at",
        "sync_head",
    )  # fmt: skip
    audit_exclude = ("sync_status", "sync_message", "sync_finished_at", "sync_head")
    inlines = [SourceCommitInline]
    actions = ["sync"]
    change_form_template = "catalog/admin_source_change_form.html"

    @admin.display(description="waiting for approval")
    def waiting(self, obj):
        """Links to the review of each version waiting, so Approve is one click away."""
        versions = obj.versions.filter(approved_at__isnull=True).order_by("-created_at")[:10]
        if not versions:
            return "—"
        rows = format_html_join(
            "",
            '<li><a href="{}">Review and approve {} at {}</a></li>',
            (
                (
                    reverse("admin:catalog_playbookversion_review", args=[v.pk]),
                    v.path,
                    v.commit[:10],
                )
                for v in versions
            ),
        )
        return format_html('<ul class="waiting">{}</ul>', rows)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # Saved, so synced: a worker fetches it after the commit; its page shows the outcome.
        source_sync_enqueue(source=form.instance, acting_user=request.user)
        self.message_user(
            request, f"{form.instance}: syncing in the background; its page shows the outcome."
        )

    def get_urls(self):
        sync_now = self.admin_site.admin_view(require_POST(self.sync_now_view))
        return [
            path("<path:object_id>/sync/", sync_now, name="catalog_playbooksource_sync"),
            *super().get_urls(),
        ]

    def sync_now_view(self, request, object_id):
        source = get_object_or_404(PlaybookSource, pk=object_id)
        if not self.has_change_permission(request, source):
            raise PermissionDenied
        self._sync_one(request, source)
        return HttpResponseRedirect(
            reverse("admin:catalog_playbooksource_change", args=[source.pk])
        )

    def _sync_one(self, request, source):
        try:
            message = source_sync_report(source=source, acting_user=request.user, via=Via.ADMIN)
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
        else:
            self.message_user(request, message)

    @admin.action(description="Sync: fetch commits and playbook files")
    def sync(self, request, queryset):
        for source in queryset:
            self._sync_one(request, source)


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
    # What Ops look for first (is it approved, by whom) comes before the long hashes.
    list_display = (
        "path", "source", "status", "approved_by", "approved_at", "short_commit", "short_hash",
        "review_link",
    )  # fmt: skip
    list_filter = ("source", "approved_at")
    actions = ["approve"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return (
            "review_link", "source", "commit", "path", "content_hash", "requirements",
            "approved_by", "approved_at",
        )  # fmt: skip

    @admin.display(description="status", ordering="approved_at")
    def status(self, obj):
        return "approved" if obj.is_approved else "waits for approval"

    @admin.display(description="hash")
    def short_hash(self, obj):
        return format_html('<code title="{}">{}…</code>', obj.content_hash, obj.content_hash[:12])

    @admin.display(description="review")
    def review_link(self, obj):
        label = "Review the diff" if obj.is_approved else "Review and approve"
        url = reverse("admin:catalog_playbookversion_review", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, label)

    def get_urls(self):
        review = self.admin_site.admin_view(self.review_view)
        return [
            path("<path:object_id>/review/", review, name="catalog_playbookversion_review"),
            *super().get_urls(),
        ]

    def review_view(self, request, object_id):
        """The tree, its diff and commits against what the actions use now; Approve there,
        moving the chosen actions to the version in the same step."""
        version = get_object_or_404(
            PlaybookVersion.objects.select_related("source", "approved_by"), pk=object_id
        )
        if not self.has_view_permission(request, version):
            raise PermissionDenied
        base = None
        if against := request.GET.get("against"):
            base = PlaybookVersion.objects.filter(
                pk=against if against.isdigit() else 0, source=version.source
            ).first()
            if base is None:
                raise Http404("No such version of this source to compare with.")
        if request.method == "POST":
            return self._approve_and_move(request, version)
        review = playbook_version_review(version=version, base=base)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Review {version.path} at {version.commit[:10]}",
            "review": review,
            "diff_lines": diff_lines(review.diff),
            "version": version,
            "others": version.source.versions.exclude(pk=version.pk).order_by("-created_at")[:30],
            "may_approve": self.has_change_permission(request, version)
            and request.user.has_perm("catalog.change_action"),
        }
        return TemplateResponse(request, "catalog/admin_version_review.html", context)

    def _approve_and_move(self, request, version):
        if not (
            self.has_change_permission(request, version)
            and request.user.has_perm("catalog.change_action")
        ):
            raise PermissionDenied
        ids = [int(pk) for pk in request.POST.getlist("move") if pk.isdigit()]
        actions = list(Action.objects.filter(pk__in=ids))
        try:
            moved = playbook_version_approve_and_move(
                version=version, actions=actions, acting_user=request.user, via=Via.ADMIN,
                request=request,
            )  # fmt: skip
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
        else:
            names = ", ".join(str(a) for a in moved) or "no action"
            self.message_user(
                request, f"Approved {version.path} at {version.commit[:10]}; moved: {names}."
            )
        return HttpResponseRedirect(
            reverse("admin:catalog_playbookversion_review", args=[version.pk])
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
        field_classes = {"form": FormDefinitionField}
        widgets = {"form": FormEditorWidget}

    def clean_form(self):
        # Checked here too (Action.clean is the backstop), to name the line of each field.
        value = self.cleaned_data["form"]
        if errors := form_definition_errors(value):
            text = self.data.get(self.add_prefix("form"), "")
            raise ValidationError(located(text, errors) if isinstance(text, str) else errors)
        return value

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
    readonly_fields = ("version_history",)

    @admin.display(description="version history")
    def version_history(self, obj):
        if obj is None or obj.pk is None:
            return "—"
        return render_to_string(
            "catalog/_action_version_history.html",
            {"history": action_version_history(action=obj), "action": obj},
        )

    def get_urls(self):
        preview = self.admin_site.admin_view(require_POST(self.form_preview_view))
        fields = self.admin_site.admin_view(require_POST(self.form_fields_view))
        return [
            path("form-preview/", preview, name="catalog_action_form_preview"),
            path("form-fields/", fields, name="catalog_action_form_fields"),
            *super().get_urls(),
        ]

    def form_preview_view(self, request):
        """The form developers will see for the posted definition, or what is wrong with it."""
        self._may_edit_forms(request)
        return TemplateResponse(
            request, "catalog/admin_form_preview.html", form_preview(request.POST.get("form", ""))
        )

    def form_fields_view(self, request):
        """The structured editor's rows for the posted definition (after Ops typed in it)."""
        self._may_edit_forms(request)
        return TemplateResponse(
            request, "catalog/_form_fields.html", form_editor_rows(request.POST.get("form", ""))
        )

    def _may_edit_forms(self, request):
        if not (self.has_add_permission(request) or self.has_change_permission(request)):
            raise PermissionDenied

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
