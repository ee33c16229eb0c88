"""Ops curate where notifications go (channels) and what they tell (rules), and read
the delivery log, with *Send again*. Every change of a channel or a rule is audited;
a webhook's URL and signing secret are write-only."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from apps.audit.admin import AuditedModelAdmin
from apps.environments.admin import WriteOnlyTextarea
from apps.notifications.constants import ChannelKind, Event
from apps.notifications.models import Channel, Delivery, DeliveryAttempt, Rule
from apps.notifications.services import channel_secrets_set, delivery_again
from portal.crypto import encrypt_text

SECRET_MIN = 16


class ChannelForm(forms.ModelForm):
    url = forms.CharField(
        required=False,
        widget=WriteOnlyTextarea(attrs={"rows": 2, "cols": 70, "autocomplete": "off"}),
        help_text="Webhooks: the URL to post to. It holds a secret: it is stored encrypted "
        "and never shown again; when changing the channel, leave it empty to keep it.",
    )
    signing_secret = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Generic webhooks: the key of the HMAC-SHA256 signature (at least "
        f"{SECRET_MIN} characters), which the receiver checks. Left empty on a new channel, "
        "one is made and shown once.",
    )

    class Meta:
        model = Channel
        fields = ("name", "kind", "team", "emails", "active")

    def clean_url(self):
        url = self.cleaned_data["url"].strip()
        if url:
            try:
                URLValidator(schemes=["http", "https"])(url)
            except ValidationError:
                raise ValidationError("Enter an http:// or https:// URL.") from None
        return url

    def clean_signing_secret(self):
        secret = self.cleaned_data["signing_secret"]
        if secret and len(secret) < SECRET_MIN:
            raise ValidationError(f"At least {SECRET_MIN} characters.")
        return secret

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind")
        has_url = bool(cleaned.get("url")) or bool(self.instance.url_encrypted)
        if kind and kind != ChannelKind.EMAIL and not has_url:
            self.add_error("url", "A webhook channel needs its URL.")
        return cleaned


@admin.register(Channel)
class ChannelAdmin(AuditedModelAdmin):
    form = ChannelForm
    audit_secret_fields = ("url_encrypted", "signing_secret_encrypted")
    list_display = ("name", "kind", "team", "active", "url_state")
    list_filter = ("kind", "active", "team")
    search_fields = ("name",)
    readonly_fields = ("url_state",)
    fields = ("name", "kind", "team", "url_state", "url", "signing_secret", "emails", "active")

    @admin.display(description="URL")
    def url_state(self, obj):
        if obj is None or not obj.url_encrypted:
            return "not set"
        return "set (write-only: never shown)"

    def save_model(self, request, obj, form, change):
        secret = form.cleaned_data.get("signing_secret")
        if secret:
            obj.signing_secret_encrypted = encrypt_text(secret)
        made = obj.kind == ChannelKind.WEBHOOK and not obj.signing_secret_encrypted
        channel_secrets_set(channel=obj, url=form.cleaned_data.get("url") or None)
        super().save_model(request, obj, form, change)
        if made:
            self.message_user(
                request,
                f"The signing secret of {obj} (shown once; give it to the receiver): "
                f"{obj.signing_secret}",
                messages.WARNING,
            )


class RuleForm(forms.ModelForm):
    events = forms.MultipleChoiceField(choices=Event.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = Rule
        fields = (
            "name", "channel", "events", "services", "environments", "include_dry_runs",
            "active",
        )  # fmt: skip


@admin.register(Rule)
class RuleAdmin(AuditedModelAdmin):
    form = RuleForm
    list_display = ("name", "channel", "event_list", "active")
    list_filter = ("active", "channel")
    filter_horizontal = ("services", "environments")

    @admin.display(description="events")
    def event_list(self, obj):
        return ", ".join(obj.events)


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = ("at", "ok", "response_code", "duration_ms", "error")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    """The delivery log: what was sent where, each attempt; read-only but for *Send
    again*."""

    list_display = ("created_at", "event", "subject", "to", "status", "attempts")
    list_filter = ("status", "event", "channel")
    search_fields = ("subject", "to_email")
    inlines = [AttemptInline]
    actions = ["send_again"]
    readonly_fields = (
        "id", "channel", "rule", "to_email", "event", "run", "subject", "message", "status",
        "attempts", "next_attempt_at", "created_at", "delivered_at",
    )  # fmt: skip

    @admin.display(description="to")
    def to(self, obj):
        return obj.channel or obj.to_email

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Send again")
    def send_again(self, request, queryset):
        for delivery in queryset:
            delivery_again(delivery=delivery)
        self.message_user(request, f"{queryset.count()} delivery(ies) will be sent again.")
