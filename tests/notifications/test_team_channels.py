"""A team's members set up the team's own channels, which hear of its services only."""

import pytest

from apps.audit.models import AuditEvent
from apps.notifications.models import Channel
from tests.clients import page_client
from tests.factories import ServiceFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db

URL = "https://hooks.slack.com/services/T0/B0/teamsecret"


@pytest.fixture
def team():
    team = TeamFactory(slug="payments", members=[UserFactory(username="pat")])
    ServiceFactory(slug="billing", team=team)
    return team


def _add(user, **fields):
    data = {"name": "payments-alerts", "kind": "slack", "url": URL,
            "events": ["run.failed", "run.fixed"], **fields}  # fmt: skip
    return page_client(user).post("/teams/payments/notifications/", data, follow=True)


def test_a_member_adds_a_channel_for_the_teams_services(team):
    page = _add(team.members.get())

    assert "payments-alerts added." in page.content.decode()
    channel = Channel.objects.get()
    assert (channel.team, channel.kind, channel.url) == (team, "slack", URL)
    assert channel.rules.get().events == ["run.failed", "run.fixed"]
    assert "teamsecret" not in page.content.decode()  # the URL is never shown back
    audit = AuditEvent.objects.get(verb="channel.create")
    assert audit.details["team"] == "payments" and "teamsecret" not in str(audit.details)


def test_someone_outside_the_team_may_not(team):
    assert _add(UserFactory(username="eve")).status_code == 403
    assert not Channel.objects.exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"url": ""}, "A webhook channel needs its URL."),
        ({"events": []}, "This field is required."),
        ({"url": "javascript:alert(1)"}, "Enter an http:// or https:// URL."),
    ],
)
def test_a_bad_channel_is_a_message_beside_its_field(team, fields, message):
    page = _add(team.members.get(), **fields)

    assert page.status_code == 400
    assert message in page.content.decode()
    assert not Channel.objects.exists()


def test_a_member_removes_it(team):
    _add(team.members.get())
    channel = Channel.objects.get()

    page_client(team.members.get()).post(f"/teams/payments/notifications/{channel.pk}/delete/")

    assert not Channel.objects.exists()
    assert AuditEvent.objects.filter(verb="channel.delete").exists()
