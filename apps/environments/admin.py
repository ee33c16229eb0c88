from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string
from django.utils import timezone

from apps.accounts.constants import Role
from apps.audit.admin import AuditedModelAdmin
from apps.audit.constants import Via
from apps.environments.constants import WEEKDAYS
from apps.environments.inventories import inventory_list
from apps.environments.models import Credential, Environment, EnvironmentLock, FreezeWindow
from apps.environments.selectors import when
from apps.environments.services import (
    LockRefused,
    credential_secret_set,
    credential_variable_errors,
    lock_release,
)


class EnvironmentAdminForm(forms.ModelForm):
    """An inventory kept in a playbook source is checked as it is saved: the path must be
    a file or directory inside the tree of the source's newest approved version, and
    ansible-inventory must read it. (The admin gives it its model and fields.)"""

    def clean(self):
        cleaned = super().clean()
        source, path = cleaned.get("inventory_source"), cleaned.get("inventory_path")
        # An inventory given twice is the model's message to give, without listing it.
        if source and path and not cleaned.get("inventory") and not self.errors:
            listing = inventory_list(source=source, path=path)
            if listing.error:
                self.add_error("inventory_path", listing.error)
        return cleaned


@admin.register(Environment)
class EnvironmentAdmin(AuditedModelAdmin):
    form = EnvironmentAdminForm
    list_display = ("name", "slug", "order", "queue", "when_locked")
    prepopulated_fields = {"slug": ("name",)}
    ordering = ("order",)
    filter_horizontal = ("emergency_teams",)
    readonly_fields = ("inventory_hosts",)

    @admin.display(description="hosts of the inventory")
    def inventory_hosts(self, obj):
        """What an inventory kept in a playbook source resolves to, as runs will see it."""
        if obj is None or not obj.inventory_in_source:
            return "—"
        listing = inventory_list(source=obj.inventory_source, path=obj.inventory_path)
        return render_to_string("environments/inventory_hosts.html", {"listing": listing})

    def audit_scope(self, obj):
        return {"environment": obj.slug}


class WriteOnlyTextarea(forms.Textarea):
    """A textarea that never shows a value back, not even the one just posted."""

    def format_value(self, value):
        return None


class CredentialAdminForm(forms.ModelForm):
    """The secret is write-only: typed in, checked, encrypted; never rendered again."""

    value = forms.CharField(
        required=False,
        strip=False,
        widget=WriteOnlyTextarea(
            attrs={"rows": 6, "cols": 70, "autocomplete": "off", "spellcheck": "false"}
        ),
        help_text=(
            "The SSH private key (the whole file), the password or the variable's value. "
            "It is never shown again; when changing the credential, leave it empty to keep "
            "the current one."
        ),
    )
    passphrase = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="SSH keys protected by a passphrase only.",
    )

    class Meta:
        model = Credential
        fields = ("name", "kind", "variable", "description", "environments", "actions")

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind")
        if kind is None:
            return cleaned
        if errors := credential_variable_errors(kind, cleaned.get("variable", "")):
            self.add_error("variable", errors)
        value, passphrase = cleaned.get("value", ""), cleaned.get("passphrase", "")
        kind_changed = self.instance.pk is not None and "kind" in self.changed_data
        if not value and (self.instance.pk is None or kind_changed):
            self.add_error("value", "Enter the secret value.")
        elif not value and passphrase:
            self.add_error("value", "Enter the key again with its new passphrase.")
        elif value and not self.errors:
            self.instance.kind = kind
            try:
                credential_secret_set(credential=self.instance, value=value, passphrase=passphrase)
            except ValidationError as exc:
                for field, messages in exc.message_dict.items():
                    self.add_error(field if field in self.fields else None, messages)
        return cleaned


@admin.register(Credential)
class CredentialAdmin(AuditedModelAdmin):
    """Every change is in the audit log with its diff; the secret fields appear there
    only as "(changed, value not recorded)"."""

    form = CredentialAdminForm
    audit_noun = "credential"
    list_display = ("name", "kind", "variable", "environment_list", "secret_state")
    list_filter = ("kind", "environments")
    search_fields = ("name", "variable", "description")
    filter_horizontal = ("environments", "actions")
    readonly_fields = ("secret_state",)
    fields = (
        "name", "kind", "variable", "description", "secret_state", "value", "passphrase",
        "environments", "actions",
    )  # fmt: skip

    @admin.display(description="environments")
    def environment_list(self, obj):
        return ", ".join(env.slug for env in obj.environments.all())

    @admin.display(description="secret")
    def secret_state(self, obj):
        if obj is None or not obj.has_secret:
            return "not set"
        when = timezone.localtime(obj.secret_set_at).strftime("%Y-%m-%d %H:%M")
        extra = f"; {obj.fingerprint}" if obj.fingerprint else ""
        locked = "; with passphrase" if obj.passphrase_encrypted else ""
        return f"set {when}{extra}{locked} (write-only: never shown)"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("environments")

    def audit_details(self, obj):
        return {"kind": obj.kind, "variable": obj.variable, "fingerprint": obj.fingerprint}


# --- freeze windows and locks -----------------------------------------------------------
class FreezeWindowAdminForm(forms.ModelForm):
    weekdays = forms.TypedMultipleChoiceField(
        choices=WEEKDAYS,
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Weekly windows: the days on which it starts.",
    )

    class Meta:
        model = FreezeWindow
        fields = (
            "environment", "name", "reason", "active", "kind", "starts_at", "ends_at",
            "weekdays", "start_time", "end_time", "time_zone",
        )  # fmt: skip

    def clean_weekdays(self):
        return sorted(set(self.cleaned_data.get("weekdays") or []))


@admin.register(FreezeWindow)
class FreezeWindowAdmin(AuditedModelAdmin):
    """Ops define when runs on an environment wait (weekends, a release day...)."""

    form = FreezeWindowAdminForm
    audit_noun = "freeze_window"
    list_display = ("name", "environment", "schedule", "active", "in_force_now")
    list_filter = ("environment", "kind", "active")
    search_fields = ("name", "reason")

    @admin.display(description="schedule")
    def schedule(self, obj):
        return obj.schedule()

    @admin.display(description="in force now")
    def in_force_now(self, obj):
        until = obj.in_force_until(timezone.now())
        return f"yes, until {when(until, obj.zone)}" if until else "no"

    def audit_scope(self, obj):
        return {"environment": obj.environment.slug}


@admin.register(EnvironmentLock)
class EnvironmentLockAdmin(AuditedModelAdmin):
    """Locks are taken on the portal's pages or by the API; here Ops see them all and
    release them (through the same service, so it is audited the same way)."""

    list_display = (
        "environment", "service", "created_by_name", "reason", "created_at", "expires_at", "state",
    )  # fmt: skip
    list_filter = ("environment", ("released_at", admin.EmptyFieldListFilter))
    search_fields = ("reason", "created_by_name", "released_by_name")
    readonly_fields = (
        "environment", "service", "reason", "created_by_name", "created_at", "expires_at",
        "released_at", "released_by_name",
    )  # fmt: skip
    fields = readonly_fields
    actions = ["release"]

    @admin.display(description="state")
    def state(self, obj):
        if obj.released_at:
            return f"released by {obj.released_by_name}"
        return "holding" if obj.is_active() else "expired"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # the history of locks stays

    def has_release_permission(self, request):
        user = request.user
        return user.is_active and (user.is_superuser or user.role == Role.OPS)

    @admin.action(description="Release the selected locks", permissions=["release"])
    def release(self, request, queryset):
        released = 0
        for lock in queryset.select_related("environment", "service"):
            if not lock.is_active():
                continue
            try:
                lock_release(lock=lock, user=request.user, via=Via.ADMIN, request=request)
            except LockRefused as exc:
                self.message_user(request, f"{lock}: {exc.reason}", messages.ERROR)
            else:
                released += 1
        self.message_user(request, f"Released {released} lock(s).", messages.SUCCESS)
