"""Who is told what, and the telling: deliveries are written in the transaction of what
they tell (or right after it), then sent by a task, retried with growing pauses, each
attempt kept. A receiver that is down slows nothing but its own deliveries."""

import logging
import time
from datetime import timedelta

import httpx
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from apps.notifications import messages
from apps.notifications.constants import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    ChannelKind,
    DeliveryStatus,
)
from apps.notifications.models import (
    Channel,
    Delivery,
    DeliveryAttempt,
    Rule,
    Subscription,
    email_list,
)
from apps.runs.queue import QUEUE_ERRORS, task_send
from portal.crypto import encrypt_text, key_generate

log = logging.getLogger(__name__)

TASK_DELIVER = "apps.notifications.tasks.delivery_send"
# While an attempt is made, the delivery is not due again (a second task finds it taken).
CLAIM_SECONDS = 120


def channel_secrets_set(*, channel: Channel, url: str | None = None) -> None:
    """Set a channel's webhook URL (write-only, encrypted); a generic webhook gets its
    signing secret the first time."""
    if url is not None:
        channel.url_encrypted = encrypt_text(url) if url else ""
    if channel.kind == ChannelKind.WEBHOOK and not channel.signing_secret_encrypted:
        channel.signing_secret_encrypted = encrypt_text(key_generate())


def _matches(rule: Rule, event: str, *, service, environment, check: bool) -> bool:
    if event not in rule.events or (check and not rule.include_dry_runs):
        return False
    team = rule.channel.team_id
    if team is not None and (service is None or service.team_id != team):
        return False
    services = {s.pk for s in rule.services.all()}
    environments = {e.pk for e in rule.environments.all()}
    if services and (service is None or service.pk not in services):
        return False
    return not environments or (environment is not None and environment.pk in environments)


def rules_matching(event: str, *, service, environment, check: bool = False) -> list[Rule]:
    rules = (
        Rule.objects.filter(active=True, channel__active=True)
        .select_related("channel")
        .prefetch_related("services", "environments")
    )
    return [
        rule
        for rule in rules
        if _matches(rule, event, service=service, environment=environment, check=check)
    ]


def _subscriber(event: str, run) -> str:
    """The address of the run's requester, if they asked to hear of this."""
    user = run.requested_by if run is not None else None
    if user is None or not user.email or not user.is_active:
        return ""
    wants = Subscription.objects.filter(user=user, active=True).first()
    return user.email if wants is not None and event in wants.events else ""


def deliveries_create(
    event: str, message: dict, *, service=None, environment=None, run=None, check=False
) -> list[Delivery]:
    """A delivery per matching rule (and to the requester, for their own run), each sent
    by a task once committed."""
    subject = message["title"][:300]
    made = [
        Delivery(channel=rule.channel, rule=rule, event=event, run=run, subject=subject,
                 message=message)
        for rule in rules_matching(event, service=service, environment=environment, check=check)
    ]  # fmt: skip
    if run is not None and (address := _subscriber(event, run)):
        made.append(
            Delivery(to_email=address, event=event, run=run, subject=subject, message=message)
        )
    if not made:
        return []
    with transaction.atomic():
        Delivery.objects.bulk_create(made)
        for delivery in made:
            transaction.on_commit(lambda pk=delivery.pk: delivery_enqueue(pk))
    return made


def delivery_enqueue(delivery_id, *, countdown: float = 0) -> None:
    try:
        task_send(
            TASK_DELIVER,
            args=[str(delivery_id)],
            queue=settings.CELERY_HOUSEKEEPING_QUEUE,
            countdown=countdown,
        )
    except QUEUE_ERRORS as exc:
        # The sweep (deliveries_due) sends it when the broker is back.
        log.warning("Delivery %s not queued (%s); the sweep will send it.", delivery_id, exc)


def _claim(delivery_id) -> Delivery | None:
    """Take the delivery for one attempt, if it is pending and due: one atomic update,
    so two tasks for it never both send."""
    now = timezone.now()
    taken = Delivery.objects.filter(
        pk=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now
    ).update(next_attempt_at=now + timedelta(seconds=CLAIM_SECONDS))
    if not taken:
        return None
    return Delivery.objects.select_related("channel").get(pk=delivery_id)


def _send(delivery: Delivery) -> int | None:
    """Make one attempt; the HTTP status of a webhook's answer (None for e-mail). Raises
    on what went wrong."""
    channel, message = delivery.channel, delivery.message
    if delivery.to_email or (channel is not None and channel.kind == ChannelKind.EMAIL):
        to = [delivery.to_email] if delivery.to_email else email_list(channel.emails)
        send_mail(delivery.subject, messages.email_text(message), None, to, fail_silently=False)
        return None
    if channel is None:
        raise ValueError("Its channel was deleted.")
    headers = {"Content-Type": "application/json", "User-Agent": "Pushbutton"}
    if channel.kind == ChannelKind.SLACK:
        body = messages.encoded(messages.slack_body(message))
    elif channel.kind == ChannelKind.TEAMS:
        body = messages.encoded(messages.teams_body(message))
    else:
        body = messages.encoded(messages.webhook_body(message, delivery_id=str(delivery.pk)))
        headers[SIGNATURE_HEADER] = messages.signature(channel.signing_secret, body)
        headers[DELIVERY_HEADER] = str(delivery.pk)
        headers[EVENT_HEADER] = delivery.event
    response = httpx.post(
        channel.url,
        content=body,
        headers=headers,
        timeout=settings.NOTIFY_TIMEOUT_SECONDS,
        follow_redirects=False,
    )
    if not 200 <= response.status_code < 300:
        raise DeliveryFailed(f"HTTP {response.status_code}", response.status_code)
    return response.status_code


class DeliveryFailed(Exception):
    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


def delivery_send(delivery_id) -> bool | None:
    """One attempt at a pending, due delivery (None when it is not: delivered, given
    up, or taken by another task). On failure the next attempt is set after a pause
    from NOTIFY_RETRY_SECONDS; after the last, the delivery has failed."""
    delivery = _claim(delivery_id)
    if delivery is None:
        return None
    started = time.monotonic()
    code, error = None, ""
    try:
        code = _send(delivery)
    except DeliveryFailed as exc:
        code, error = exc.code, str(exc)
    except Exception as exc:  # the receiver's fault or the network's: kept, retried
        error = f"{type(exc).__name__}: {exc}"[:2000]
    return _attempted(delivery, code=code, error=error, started=started)


def _attempted(delivery: Delivery, *, code, error: str, started: float) -> bool:
    now = timezone.now()
    pauses = settings.NOTIFY_RETRY_SECONDS
    delivery.attempts += 1
    DeliveryAttempt.objects.create(
        delivery=delivery,
        ok=not error,
        response_code=code,
        duration_ms=round((time.monotonic() - started) * 1000),
        error=error,
    )
    if not error:
        delivery.status, delivery.delivered_at = DeliveryStatus.DELIVERED, now
    elif delivery.attempts > len(pauses):
        delivery.status = DeliveryStatus.FAILED
    else:
        delivery.next_attempt_at = now + timedelta(seconds=pauses[delivery.attempts - 1])
    delivery.save(update_fields=["attempts", "status", "delivered_at", "next_attempt_at"])
    if delivery.status == DeliveryStatus.PENDING:
        delivery_enqueue(delivery.pk, countdown=pauses[delivery.attempts - 1])
    return not error


def delivery_again(*, delivery: Delivery) -> None:
    """*Send again*: a delivery (failed or delivered) is pending and due once more."""
    Delivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.PENDING, next_attempt_at=timezone.now()
    )
    transaction.on_commit(lambda: delivery_enqueue(delivery.pk))


def deliveries_due(*, overdue_for: float = 60) -> int:
    """The sweep (beat): send the pending deliveries whose task was lost (the broker
    was down, a worker died): those due for `overdue_for` seconds and more."""
    cutoff = timezone.now() - timedelta(seconds=overdue_for)
    due = list(
        Delivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lt=cutoff)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:500]
    )
    for pk in due:
        delivery_enqueue(pk)
    return len(due)
