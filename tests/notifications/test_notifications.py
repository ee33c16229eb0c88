"""Who is told what: rules matching a run's end, a refusal or a lock; the messages each
kind of channel gets (signed webhooks, Slack, Teams, e-mail); retries with the same
delivery id, giving up, sending again. Deliveries are sent in this process to a real
HTTP receiver and a real SMTP server on loopback (the worker's part: test_worker.py)."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.audit.constants import Via
from apps.environments.services import lock_release
from apps.notifications import messages, services
from apps.notifications.constants import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    ChannelKind,
    DeliveryStatus,
    Event,
)
from apps.notifications.models import Channel, Delivery, Rule, Subscription
from apps.runs.constants import RunStatus
from apps.runs.services import run_end
from tests.clients import api_client, api_launch, page_client
from tests.environments.helpers import hold_lock
from tests.factories import RunFactory, ServiceFactory, TeamFactory, UserFactory
from tests.notifications.conftest import webhook

pytestmark = pytest.mark.django_db


@pytest.fixture
def ended(django_capture_on_commit_callbacks):
    """End a run through the one door out, its after-commit work done as in production."""

    def end(run, status=RunStatus.SUCCESSFUL, **fields):
        with django_capture_on_commit_callbacks(execute=True):
            return run_end(run=run, status=status, rc=0 if status == "successful" else 2, **fields)

    return end


def _running(**fields):
    now = timezone.now()
    return RunFactory(status=RunStatus.RUNNING, started_at=now - timedelta(seconds=72),
                      version="2.4.1", **fields)  # fmt: skip


def _send_all() -> list:
    return [services.delivery_send(d.pk) for d in Delivery.objects.order_by("created_at")]


def test_a_webhook_hears_a_run_succeeded_signed_with_its_delivery_id(receiver, ended):
    rule = webhook(receiver.url)
    run = ended(_running())

    assert _send_all() == [True]

    (headers, body), = receiver.got  # fmt: skip
    sent = json.loads(body)
    delivery = Delivery.objects.get()
    assert headers[DELIVERY_HEADER] == sent["delivery"] == str(delivery.pk)
    assert messages.signature_valid(rule.channel.signing_secret, body, headers[SIGNATURE_HEADER])
    assert sent["event"] == "run.succeeded"
    assert sent["run"]["id"] == run.pk and sent["run"]["version"] == "2.4.1"
    assert sent["url"] == f"http://localhost:8000/runs/{run.pk}/"
    assert sent["facts"]["duration"] == "1 min 12 s"
    assert sent["title"].startswith(f"Run succeeded: {run.action_label} {run.service.slug} 2.4.1")
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.attempts == 1


def test_a_signature_fails_for_another_body_another_key_or_an_old_time():
    body = b'{"event":"run.failed"}'
    header = messages.signature("k" * 32, body)

    assert messages.signature_valid("k" * 32, body, header)
    assert not messages.signature_valid("k" * 32, body + b" ", header)
    assert not messages.signature_valid("x" * 32, body, header)
    old = messages.signature("k" * 32, body, timestamp=int(timezone.now().timestamp()) - 3600)
    assert not messages.signature_valid("k" * 32, body, old)
    assert not messages.signature_valid("k" * 32, body, "garbage")


def test_a_receiver_answering_500_gets_it_again_with_the_same_id(receiver, ended, settings):
    settings.NOTIFY_RETRY_SECONDS = (5, 30)
    webhook(receiver.url)
    receiver.answers = [500]
    ended(_running(), RunStatus.FAILED)
    delivery = Delivery.objects.get()

    assert services.delivery_send(delivery.pk) is False
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 1)
    assert 3 < (delivery.next_attempt_at - timezone.now()).total_seconds() <= 5
    assert services.delivery_send(delivery.pk) is None  # not due yet: nothing sent
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())

    assert services.delivery_send(delivery.pk) is True

    ids = [headers[DELIVERY_HEADER] for headers, _ in receiver.got]
    assert ids == [str(delivery.pk)] * 2
    attempts = list(delivery.tries.values_list("ok", "response_code"))
    assert attempts == [(False, 500), (True, 200)]


def test_after_the_last_retry_it_has_failed_and_can_be_sent_again(receiver, ended, settings):
    settings.NOTIFY_RETRY_SECONDS = (0,)
    webhook(receiver.url)
    receiver.answers = [503, 503]
    ended(_running(), RunStatus.FAILED)
    delivery = Delivery.objects.get()

    services.delivery_send(delivery.pk)
    services.delivery_send(delivery.pk)

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 2)
    services.delivery_again(delivery=delivery)
    assert services.delivery_send(delivery.pk) is True
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED


def test_a_receiver_that_is_down_is_an_attempt_kept_with_its_error(ended):
    webhook("http://127.0.0.1:9/hook")  # the discard port: nothing listens
    ended(_running(), RunStatus.FAILED)

    assert _send_all() == [False]
    attempt = Delivery.objects.get().tries.get()
    assert "ConnectError" in attempt.error and attempt.response_code is None


def test_slack_and_teams_get_their_own_payloads(receiver, ended):
    webhook(receiver.url, kind=ChannelKind.SLACK)
    webhook(receiver.url + "/teams", kind=ChannelKind.TEAMS)
    run = ended(_running(), RunStatus.FAILED, error="Task 'restart' failed on web1")

    _send_all()

    assert {headers["Content-Type"] for headers, _ in receiver.got} == {"application/json"}
    slack, teams = sorted(receiver.bodies(), key=lambda b: "@type" in b)
    assert slack["text"].startswith("Run failed: ")
    assert f"/runs/{run.pk}/|Open in Pushbutton>" in slack["blocks"][1]["text"]["text"]
    assert teams["@type"] == "MessageCard" and teams["themeColor"] == "cf222e"
    facts = {f["name"]: f["value"] for f in teams["sections"][0]["facts"]}
    assert facts["error"] == "Task 'restart' failed on web1"
    assert teams["potentialAction"][0]["targets"][0]["uri"].endswith(f"/runs/{run.pk}/")


def test_a_rule_tells_only_of_its_services_environments_and_events(receiver, ended):
    web = ServiceFactory(slug="web")
    run_web = _running(action__service=web)
    other = _running()
    rule = webhook(receiver.url, events=[Event.RUN_FAILED], services=[web])

    ended(run_web, RunStatus.SUCCESSFUL)  # not an event it asked for
    ended(other, RunStatus.FAILED)  # not its service
    assert not Delivery.objects.exists()

    rule.environments.set([run_web.environment])
    failed = _running(action__service=web, environment=run_web.environment)
    ended(failed, RunStatus.FAILED)
    assert list(Delivery.objects.values_list("run", flat=True)) == [failed.pk]


def test_a_teams_channel_hears_only_of_its_teams_services(receiver, ended):
    team = TeamFactory(slug="payments")
    webhook(receiver.url, team=team)
    theirs = _running(action__service=ServiceFactory(slug="billing", team=team))

    ended(_running())
    ended(theirs)

    assert list(Delivery.objects.values_list("run", flat=True)) == [theirs.pk]


def test_dry_runs_are_told_only_where_a_rule_asks(receiver, ended):
    rule = webhook(receiver.url)
    ended(_running(check_mode=True))
    assert not Delivery.objects.exists()

    rule.include_dry_runs = True
    rule.save()
    ended(_running(check_mode=True))
    assert Delivery.objects.count() == 1


def test_the_first_success_after_a_failure_is_told_as_fixed(receiver, ended):
    webhook(receiver.url, events=[Event.RUN_FIXED])
    first = _running()
    same = {"action": first.action, "environment": first.environment}
    ended(first, RunStatus.FAILED)
    ended(_running(**same), RunStatus.SUCCESSFUL)
    ended(_running(**same), RunStatus.SUCCESSFUL)

    assert Delivery.objects.get().subject.startswith("Fixed: ")


def test_a_refused_launch_and_a_lock_are_told(receiver, demo, django_capture_on_commit_callbacks):
    webhook(receiver.url, events=[Event.RUN_REFUSED, Event.LOCK_TAKEN, Event.LOCK_RELEASED])

    with django_capture_on_commit_callbacks(execute=True):
        lock = hold_lock(demo.ops, demo.envs["test"], reason="Database migration")
        refused = api_launch(api_client(demo.dev), "test", "1.2.3")
        lock_release(lock=lock, user=demo.ops, via=Via.WEB)

    assert refused.status_code == 409
    told = list(Delivery.objects.order_by("created_at").values_list("event", flat=True))
    assert told == [Event.LOCK_TAKEN, Event.RUN_REFUSED, Event.LOCK_RELEASED]
    refusal = Delivery.objects.get(event=Event.RUN_REFUSED)
    assert "Database migration" in refusal.message["facts"]["reason"]
    assert refusal.message["url"].endswith("/services/hello-web/")


def test_a_subscriber_gets_an_email_when_their_run_ends(smtp, ended):
    user = UserFactory(username="maria", email="maria@example.com")
    Subscription.objects.create(user=user)
    run = ended(_running(requested_by=user), RunStatus.FAILED, error="Task 'migrate' failed")

    assert _send_all() == [True]

    (mail,) = smtp.messages
    assert mail["to"] == ["maria@example.com"]
    assert f"Subject: Run failed: {run.action_label}" in mail["text"]
    assert "error: Task 'migrate' failed" in mail["text"]
    assert f"http://localhost:8000/runs/{run.pk}/" in mail["text"]


def test_an_email_channel_sends_to_its_addresses(smtp, ended):
    channel = Channel.objects.create(name="ops mail", kind=ChannelKind.EMAIL,
                                     emails="ops@example.com, oncall@example.com")  # fmt: skip
    Rule.objects.create(name="failures", channel=channel, events=[Event.RUN_FAILED])
    ended(_running(), RunStatus.FAILED)

    assert _send_all() == [True]
    assert smtp.messages[0]["to"] == ["ops@example.com", "oncall@example.com"]


def test_the_subscription_page_saves_and_explains_a_bad_choice():
    user = UserFactory(username="li", email="li@example.com")
    client = page_client(user)

    assert "li@example.com" in client.get("/notifications/").content.decode()
    bad = client.post("/notifications/", {"active": "on"})
    assert bad.status_code == 400
    assert "Choose at least one, or turn the e-mails off." in bad.content.decode()
    good = client.post("/notifications/", {"active": "on", "events": ["run.failed"]})
    assert good.status_code == 302
    assert Subscription.objects.get(user=user).events == ["run.failed"]


def test_the_readmes_verifier_accepts_a_real_signature_and_rejects_a_forged_one():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Notifications") :]
    code = section[
        section.index("```python") + 9 : section.index("```", section.index("```python") + 9)
    ]
    scope: dict = {}
    exec(code, scope)  # noqa: S102 (the receiver's code, as the README documents it)
    body = b'{"delivery":"d1","event":"run.failed"}'
    header = messages.signature("s3cret-signing-key!", body)

    assert scope["verified"](b"s3cret-signing-key!", body, header)
    assert not scope["verified"](b"s3cret-signing-key!", body.replace(b"failed", b"ok"), header)
