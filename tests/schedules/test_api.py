"""Schedules through the API: created as the token's user, a message per field, the
same rights as the pages."""

import pytest

from apps.schedules.models import Schedule
from tests.clients import api_client
from tests.factories import ActionFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def action(local_env):
    return ActionFactory(
        environments=[local_env],
        slug="smoke",
        form=[{"name": "retries", "type": "integer", "min": 0, "max": 5, "default": 1}],
    )


def _body(target, place, **fields) -> dict:
    return {
        "name": "Nightly smoke",
        "service": target.service.slug,
        "action": target.slug,
        "environment": place.slug,
        "kind": "rrule",
        "expression": "FREQ=DAILY;BYHOUR=2;BYMINUTE=30",
        "time_zone": "Europe/Berlin",
        "parameters": {"retries": 3},
        **fields,
    }


def test_a_schedule_is_created_read_paused_and_deleted_through_the_api(dev, action, local_env):
    client = api_client(dev)

    created = client.post(
        "/api/v1/schedules/", _body(action, local_env), content_type="application/json"
    )

    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["runs_as"], body["parameters"], body["when_busy"]) == (
        "dev",
        {"retries": 3},
        "skip",
    )
    assert len(body["next_firings"]) == 5
    assert all(at.endswith(("T02:30:00+01:00", "T02:30:00+02:00")) for at in body["next_firings"])
    url = f"/api/v1/schedules/{body['id']}/"
    assert [s["id"] for s in client.get("/api/v1/schedules/").json()] == [body["id"]]
    paused = client.post(f"{url}pause/")
    assert paused.status_code == 200 and paused.json()["paused"] is True
    assert paused.json()["next_firings"] == []
    assert client.post(f"{url}resume/").json()["paused"] is False
    assert client.delete(url).status_code == 204
    assert not Schedule.objects.exists()


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"expression": "FREQ=SOMETIMES"}, {"expression"}),
        ({"kind": "cron", "expression": "99 * * * *"}, {"expression"}),
        ({"time_zone": "Moon/Base"}, {"time_zone"}),
        ({"parameters": {"retries": 9, "colour": "red"}}, {"parameters"}),
        ({"action": "nope"}, {"action"}),
        ({"environment": "nowhere"}, {"environment"}),
        ({"kind": "weekly"}, {"kind"}),
    ],
)
def test_bad_input_is_a_400_with_a_message_per_field(dev, action, local_env, fields, errors):
    answer = api_client(dev).post(
        "/api/v1/schedules/", _body(action, local_env, **fields), content_type="application/json"
    )

    assert answer.status_code == 400, answer.content
    assert set(answer.json()["errors"]) == errors
    assert not Schedule.objects.exists()


def test_the_api_gives_no_more_rights_than_the_pages(dev, action, local_env):
    outsider = api_client(UserFactory(username="outsider"))
    refused = outsider.post(
        "/api/v1/schedules/", _body(action, local_env), content_type="application/json"
    )
    assert refused.status_code == 400
    assert "No grant of your teams" in refused.json()["errors"]["environment"][0]
    reader = api_client(dev, name="read-only", scopes=["read"])
    assert (
        reader.post(
            "/api/v1/schedules/", _body(action, local_env), content_type="application/json"
        ).status_code
        == 403
    )

    created = (
        api_client(dev)
        .post("/api/v1/schedules/", _body(action, local_env), content_type="application/json")
        .json()
    )
    url = f"/api/v1/schedules/{created['id']}/"
    assert outsider.get(url).status_code == 404
    assert outsider.get("/api/v1/schedules/").json() == []
    assert outsider.delete(url).status_code == 404
