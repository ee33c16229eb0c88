"""Ops curate channels and rules in the admin: a webhook's URL and signing secret are
write-only (never shown back, never in the audit log), every change is audited, and the
delivery log offers *Send again*."""

import pytest

from apps.accounts.constants import Role
from apps.audit.models import AuditEvent
from apps.notifications.constants import DeliveryStatus
from apps.notifications.models import Channel, Delivery
from tests.clients import page_client
from tests.factories import UserFactory
from tests.notifications.conftest import webhook

pytestmark = pytest.mark.django_db


@pytest.fixture
def ops_client():
    """An Ops engineer as Ops are: staff with the Ops role, not a superuser."""
    return page_client(UserFactory(username="opsie", role=Role.OPS, is_staff=True))


URL = "https://hooks.example.com/services/T000/B000/XXXXsecretXXXX"


def _add(ops_client, **fields):
    data = {"name": "deploys", "kind": "webhook", "url": URL, "active": "on", **fields}
    return ops_client.post("/admin/notifications/channel/add/", data, follow=True)


def test_a_webhook_channel_keeps_its_url_secret_and_shows_its_signing_secret_once(ops_client):
    page = _add(ops_client).content.decode()

    channel = Channel.objects.get()
    assert channel.url == URL and URL not in channel.url_encrypted
    assert f"The signing secret of deploys (shown once; give it to the receiver): " \
        f"{channel.signing_secret}" in page  # fmt: skip
    change = ops_client.get(f"/admin/notifications/channel/{channel.pk}/change/").content.decode()
    assert "XXXXsecretXXXX" not in change and channel.signing_secret not in change
    assert "set (write-only: never shown)" in change
    audit = AuditEvent.objects.get(verb="channel.create")
    assert "XXXXsecretXXXX" not in str(audit.details)
    assert channel.signing_secret not in str(audit.details)


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"url": ""}, "url", "A webhook channel needs its URL."),
        ({"url": "ftp://example.com/x"}, "url", "Enter an http:// or https:// URL."),
        ({"signing_secret": "short"}, "signing_secret", "At least 16 characters."),
        ({"kind": "email", "url": "", "emails": "not-an-address"}, "emails", "valid email"),
    ],
)
def test_a_bad_channel_is_a_message_beside_its_field(ops_client, fields, field, message):
    page = _add(ops_client, **fields)

    assert page.status_code == 200
    assert message in page.content.decode()
    assert not Channel.objects.exists()


def test_send_again_from_the_delivery_log(ops_client, receiver):
    rule = webhook(receiver.url)
    delivery = Delivery.objects.create(channel=rule.channel, rule=rule, event="run.failed",
                                       subject="Run failed", status=DeliveryStatus.FAILED,
                                       message={"event": "run.failed", "title": "Run failed",
                                                "facts": {}, "url": ""})  # fmt: skip

    page = ops_client.post(
        "/admin/notifications/delivery/",
        {"action": "send_again", "_selected_action": [str(delivery.pk)]},
        follow=True,
    )

    assert "1 delivery(ies) will be sent again." in page.content.decode()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING
