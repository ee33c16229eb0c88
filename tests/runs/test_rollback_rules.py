"""A rollback through the API obeys the rules of the Roll back page: one service check
decides both. It puts back an earlier version that ran there successfully, never the
current one, one that never ran there, or one that was itself rolled back."""

import pytest

from apps.audit.models import AuditEvent
from apps.runs.models import Run
from apps.runs.services import LaunchRefused
from tests.clients import api_client, api_launch, page_client
from tests.factories import UserFactory
from tests.runs.helpers import launch

pytestmark = pytest.mark.django_db


def _rollback(client, env, version, of, reason="2.0.0 breaks the header"):
    return api_launch(client, env, version, rollback_of=of.pk, reason=reason)


def test_a_rollback_to_an_earlier_version_that_ran_there_is_accepted(demo, history):
    history.deploy("test", "1.0.0")
    current = history.deploy("test", "2.0.0")

    response = _rollback(api_client(demo.dev), "test", "1.0.0", current)

    assert response.status_code == 201, response.content
    assert response.json()["rollback_of"] == current.pk
    assert response.json()["version"] == "1.0.0"


def test_a_rollback_to_a_version_that_never_ran_there_is_refused(demo, history):
    history.deploy("test", "1.0.0")
    current = history.deploy("test", "2.0.0")
    count = Run.objects.count()

    response = _rollback(api_client(demo.dev), "test", "0.1.0", current)

    assert response.status_code == 409, response.content
    assert "cannot be rolled back to on Test" in response.json()["detail"]
    assert "the versions to roll back to are 1.0.0" in response.json()["detail"]
    assert Run.objects.count() == count
    refusal = AuditEvent.objects.get(verb="run.refused")
    assert "0.1.0 cannot be rolled back to" in refusal.details["reason"]


def test_a_rollback_to_a_version_that_was_itself_rolled_back_is_refused(demo, history):
    history.deploy("test", "1.0.0")
    bad = history.deploy("test", "2.0.0")
    history.deploy("test", "1.0.0", rollback_of=bad, reason="2.0.0 breaks the header")
    current = history.deploy("test", "3.0.0")

    response = _rollback(api_client(demo.dev), "test", "2.0.0", current)

    assert response.status_code == 409, response.content
    assert "the versions to roll back to are 1.0.0" in response.json()["detail"]


def test_a_rollback_to_the_current_version_is_refused(demo, history):
    history.deploy("test", "1.0.0")
    current = history.deploy("test", "2.0.0")

    response = _rollback(api_client(demo.dev), "test", "2.0.0", current)

    assert response.status_code == 409, response.content


def test_a_rollback_with_nothing_earlier_is_refused(demo, history):
    current = history.deploy("test", "1.0.0")

    response = _rollback(api_client(demo.dev), "test", "0.9.0", current)

    assert response.status_code == 409, response.content
    assert "nothing ran on Test before 1.0.0" in response.json()["detail"]


def test_the_service_decides_the_same_for_every_caller(demo, history):
    history.deploy("test", "1.0.0")
    current = history.deploy("test", "2.0.0")

    with pytest.raises(LaunchRefused) as refused:
        launch(
            demo.dev,
            demo.deploy,
            demo.envs["test"],
            {"version": "0.1.0"},
            rollback_of=current,
            reason="why",
        )

    assert refused.value.status == 409
    assert refused.value.field == "version"


def test_the_page_offers_only_what_the_rule_accepts(demo, history):
    history.deploy("test", "1.0.0")
    bad = history.deploy("test", "2.0.0")
    history.deploy("test", "1.0.0", rollback_of=bad, reason="broken")
    history.deploy("test", "3.0.0")

    html = (
        page_client(demo.dev)
        .get("/services/hello-web/environments/test/rollback/")
        .content.decode()
    )

    assert "1.0.0" in html
    assert "2.0.0" not in html


def test_a_run_one_may_not_see_is_named_as_one_that_does_not_exist(demo, history):
    current = history.deploy("test", "1.0.0")
    outsider = UserFactory()
    client = api_client(outsider)

    hidden = _rollback(client, "test", "0.9.0", current)
    missing = api_launch(client, "test", "0.9.0", rollback_of=999999, reason="why")

    assert hidden.status_code == missing.status_code == 400
    assert hidden.json()["errors"] == {"rollback_of": [f"No rollback_of '{current.pk}'."]}
    assert missing.json()["errors"] == {"rollback_of": ["No rollback_of '999999'."]}
