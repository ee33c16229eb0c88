"""Channels (where to tell), rules (what to tell there), users' subscriptions to their
own runs, and the deliveries made, each attempt kept."""

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import models
from django.utils import timezone

from apps.notifications.constants import OWN_RUN_EVENTS, ChannelKind, DeliveryStatus, Event
from portal.crypto import decrypt_text


def validate_events(value) -> None:
    if not isinstance(value, list) or not value:
        raise ValidationError("Choose at least one event.")
    unknown = sorted(set(value) - set(Event.values))
    if unknown:
        raise ValidationError(f"Unknown events: {', '.join(unknown)}.")


def validate_emails(value: str) -> None:
    for address in email_list(value):
        validate_email(address)


def email_list(value: str) -> list[str]:
    return [a.strip() for a in value.replace(";", ",").split(",") if a.strip()]


class Channel(models.Model):
    """Where notifications go: a webhook (generic, Slack, Teams) or e-mail addresses.
    A webhook's URL holds a secret: it is stored encrypted and never shown again."""

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    team = models.ForeignKey(
        "accounts.Team",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="channels",
        help_text="A team's own channel: its rules tell only of that team's services.",
    )
    url_encrypted = models.TextField(blank=True, editable=False)
    signing_secret_encrypted = models.TextField(blank=True, editable=False)
    emails = models.CharField(
        max_length=1000,
        blank=True,
        validators=[validate_emails],
        help_text="E-mail channels: the addresses, separated by commas.",
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def url(self) -> str:
        return decrypt_text(self.url_encrypted) if self.url_encrypted else ""

    @property
    def signing_secret(self) -> str:
        return decrypt_text(self.signing_secret_encrypted) if self.signing_secret_encrypted else ""

    def clean(self):
        if self.kind == ChannelKind.EMAIL and not email_list(self.emails):
            raise ValidationError({"emails": "An e-mail channel needs at least one address."})


class Rule(models.Model):
    """What a channel is told: these events, of these services on these environments
    (none chosen: all of them)."""

    name = models.CharField(max_length=100)
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="rules")
    events = models.JSONField(default=list, validators=[validate_events])
    services = models.ManyToManyField("catalog.Service", blank=True, related_name="+")
    environments = models.ManyToManyField("environments.Environment", blank=True, related_name="+")
    include_dry_runs = models.BooleanField(
        default=False, help_text="Tell of dry runs too (they change nothing)."
    )
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["channel__name", "name"]

    def __str__(self) -> str:
        return f"{self.name} → {self.channel}"


def own_run_events() -> list[str]:
    return list(OWN_RUN_EVENTS)


class Subscription(models.Model):
    """A user's wish to hear, by e-mail, how their own runs end."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="run_subscription"
    )
    events = models.JSONField(default=own_run_events, validators=[validate_events])
    active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"{self.user}: own runs"


class Delivery(models.Model):
    """One message to one channel (or one subscriber), with its attempts. Its id goes in
    the webhook's header, so a receiver can tell a retry from a new message."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    channel = models.ForeignKey(
        Channel, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    rule = models.ForeignKey(Rule, null=True, blank=True, on_delete=models.SET_NULL)
    to_email = models.EmailField(blank=True, help_text="A subscriber's address.")
    event = models.CharField(max_length=32, choices=Event.choices)
    run = models.ForeignKey(
        "runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    subject = models.CharField(max_length=300)
    message = models.JSONField(default=dict, help_text="What it tells (no secrets).")
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now, db_index=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "deliveries"
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.subject} → {self.channel or self.to_email}"


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="tries")
    at = models.DateTimeField(default=timezone.now)
    ok = models.BooleanField(default=False)
    response_code = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["at"]

    def __str__(self) -> str:
        return f"{self.delivery_id} at {self.at:%Y-%m-%d %H:%M:%S}: {'ok' if self.ok else 'failed'}"
