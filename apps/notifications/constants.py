"""What can be told, and how: the notification events and the kinds of channel."""

from django.db import models

from apps.runs.constants import RunStatus


class ChannelKind(models.TextChoices):
    WEBHOOK = "webhook", "Webhook (JSON, signed with HMAC-SHA256)"
    SLACK = "slack", "Slack incoming webhook"
    TEAMS = "teams", "Microsoft Teams incoming webhook"
    EMAIL = "email", "E-mail"


class Event(models.TextChoices):
    RUN_STARTED = "run.started", "Run started"
    RUN_SUCCEEDED = "run.succeeded", "Run succeeded"
    RUN_FAILED = "run.failed", "Run failed"
    RUN_CANCELED = "run.canceled", "Run canceled"
    RUN_TIMED_OUT = "run.timed_out", "Run timed out"
    RUN_LOST = "run.lost", "Run lost (its worker died)"
    RUN_SUPERSEDED = "run.superseded", "Run superseded in the deploy queue"
    RUN_FIXED = "run.fixed", "Fixed: the first success after a failure of the same action there"
    RUN_REFUSED = "run.refused", "Launch refused"
    LOCK_TAKEN = "lock.taken", "Lock taken"
    LOCK_RELEASED = "lock.released", "Lock released"
    INCIDENT_OPENED = "incident.opened", "Incident opened"
    INCIDENT_RESOLVED = "incident.resolved", "Incident resolved"


# The event a run's final status is told as.
ENDED = {
    RunStatus.SUCCESSFUL: Event.RUN_SUCCEEDED,
    RunStatus.FAILED: Event.RUN_FAILED,
    RunStatus.CANCELED: Event.RUN_CANCELED,
    RunStatus.TIMED_OUT: Event.RUN_TIMED_OUT,
    RunStatus.LOST: Event.RUN_LOST,
    RunStatus.SUPERSEDED: Event.RUN_SUPERSEDED,
}
# Endings that count as a failure, for "fixed".
FAILURES = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.LOST})

# What a user subscribing to their own runs hears by default: how they ended.
OWN_RUN_EVENTS = [e.value for e in ENDED.values()] + [Event.RUN_FIXED.value]

# The audit verbs told as events (the log is where refusals and locks are written).
AUDITED = {
    "run.refused": Event.RUN_REFUSED,
    "environment.locked": Event.LOCK_TAKEN,
    "environment.unlocked": Event.LOCK_RELEASED,
}


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed (gave up)"


# The header names of a webhook delivery (documented in README.md, Notifications).
SIGNATURE_HEADER = "X-Pushbutton-Signature"
DELIVERY_HEADER = "X-Pushbutton-Delivery"
EVENT_HEADER = "X-Pushbutton-Event"
