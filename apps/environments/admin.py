from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.audit.admin import AuditedModelAdmin
from apps.environments.models import Credential, Environment
from apps.environments.services import credential_secret_set, credential_variable_errors


@admin.register(Environment)
class EnvironmentAdmin(AuditedModelAdmin):
    list_display = ("name", "slug", "order", "queue")
    prepopulated_fields = {"slug": ("name",)}
    ordering = ("order",)

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
