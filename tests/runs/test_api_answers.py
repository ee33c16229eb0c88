"""What the API answers about a run: RunSerializer writes its fields out by hand (the
answer `pushbutton wait` asks for every second), and must answer exactly what its
declared fields, the ones the OpenAPI document shows, say; and a read of a run asks
the database the same few statements whatever the run."""

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from apps.runs import services
from apps.runs.api.serializers import (
    FollowUpSerializer,
    RunSerializer,
    ScheduledBySerializer,
    WaitSerializer,
)
from apps.runs.constants import RunStatus
from apps.runs.models import Run
from apps.schedules.constants import Outcome
from apps.schedules.models import Firing
from tests.clients import api_client, api_launch
from tests.runs.helpers import queue_held
from tests.schedules.helpers import schedule_make

SOURCE = {
    "commit": "3f9c2ab4d5e6",
    "committed_at": "2026-11-30T08:15:00+01:00",
    "ref": "main",
    "repository": "https://git.example.com/web/hello",
    "pipeline_url": "https://ci.example.com/p/1",
    "job_url": "",
}


def _declared(run: Run, **context) -> dict:
    """The answer as DRF's generic walk over RunSerializer's declared fields gives it,
    with the nested serializers the schema names for follow-ups, schedule and wait."""
    serializer = RunSerializer(run, context=context)
    data = dict(serializers.Serializer.to_representation(serializer, run))
    children = [] if context.get("created") else sorted(run.triggered.all(), key=lambda r: r.pk)
    data["follow_ups"] = FollowUpSerializer(children, many=True).data
    firing = Firing.objects.filter(run=run).first()
    data["scheduled_by"] = None if firing is None else ScheduledBySerializer(firing).data
    state = services.run_wait_state(run)
    data["waiting"] = None if state is None else WaitSerializer(state).data
    return data


def _json(data) -> dict:
    return json.loads(JSONRenderer().render(data))


def _assert_answers_as_declared(run_id: int, **context) -> dict:
    run = Run.objects.get(pk=run_id)
    answer = RunSerializer(run, context=context).data
    assert list(answer) == list(RunSerializer().fields)
    assert _json(answer) == _json(_declared(run, **context))
    return _json(answer)


@pytest.fixture
def sent():
    with queue_held():
        yield


def _deploy(demo, version, **body) -> dict:
    response = api_launch(api_client(demo.dev), "test", version, **body)
    assert response.status_code == 201, response.content
    return response.json()


def test_a_launched_run_is_answered_as_its_fields_declare(demo, sent):
    created = _deploy(demo, "1.0.0", source=SOURCE)

    answer = _assert_answers_as_declared(created["id"])
    assert answer["source"]["committed_at"] == "2026-11-30T07:15:00Z"
    assert _assert_answers_as_declared(created["id"], created=True) == created


def test_a_waiting_run_is_answered_as_its_fields_declare(demo, sent):
    first = _deploy(demo, "1.0.0")
    second = _deploy(demo, "1.1.0", when_locked="queue")

    answer = _assert_answers_as_declared(second["id"])
    assert answer["waiting"]["waiting_for"] == first["id"]


def test_a_run_and_what_followed_it_up_are_answered_as_declared(demo, sent):
    deploy = _deploy(demo, "1.0.0", verify=True)
    run = Run.objects.get(pk=deploy["id"])
    services.run_end(run=run, status=RunStatus.SUCCESSFUL, rc=0)
    (verification,) = services.run_follow_up(run=run)

    answer = _assert_answers_as_declared(run.pk)
    assert [child["id"] for child in answer["follow_ups"]] == [verification.pk]
    assert answer["awaits_follow_ups"] is True

    services.run_end(run=verification, status=RunStatus.FAILED, rc=2)
    _assert_answers_as_declared(verification.pk)


def test_a_scheduled_promoted_run_is_answered_as_its_fields_declare(demo, sent):
    _deploy(demo, "1.0.0")
    schedule = schedule_make(demo.dev, demo.deploy, demo.envs["test"], name="Nightly",
                             parameters={"version": "1.0.0"})  # fmt: skip
    run = Run.objects.get()
    Firing.objects.create(schedule=schedule, due_at=timezone.now() - timedelta(minutes=1),
                          outcome=Outcome.FIRED, run=run)  # fmt: skip
    Run.objects.filter(pk=run.pk).update(promoted_from=demo.envs["qa"], started_at=timezone.now())

    answer = _assert_answers_as_declared(run.pk)
    assert answer["scheduled_by"]["name"] == "Nightly"
    assert answer["promoted_from"] == "qa"


def test_a_read_asks_the_same_few_statements_whatever_the_run(demo, sent):
    client = api_client(demo.dev)
    going = _deploy(demo, "1.0.0", verify=True)
    ended = Run.objects.get(pk=going["id"])
    services.run_end(run=ended, status=RunStatus.SUCCESSFUL, rc=0)
    services.run_follow_up(run=ended)

    def statements(run_id: int) -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(f"/api/v1/runs/{run_id}/").status_code == 200
        return [q["sql"] for q in queries]

    client.get(f"/api/v1/runs/{going['id']}/")  # the token's last use noted, once a minute
    verification = ended.triggered.get()
    # The token (with its user), the run (with what its answer names), the user's rights.
    assert len(statements(verification.pk)) == 3
    # Ended well: what followed it up, and their environments, once each.
    assert len(statements(ended.pk)) == 5
