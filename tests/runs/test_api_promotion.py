"""Promote and Roll back through the API (what `pushbutton promote` and `pushbutton
rollback` ask), `promoted_from` on a launch, and the runs list with its filters."""

import json

import pytest

from apps.audit.models import AuditEvent
from apps.runs.constants import RunStatus
from apps.runs.models import Run
from tests.clients import api_client
from tests.factories import UserFactory
from tests.runs.helpers import queue_held


def _post(client, path, data=None, **headers):
    with queue_held():
        return client.post(
            path, json.dumps(data or {}), content_type="application/json", headers=headers
        )


def _promote(client, env="qa", **data):
    return _post(client, f"/api/v1/services/hello-web/environments/{env}/promote/", data)


def _rollback(client, env="test", **data):
    return _post(client, f"/api/v1/services/hello-web/environments/{env}/rollback/", data)


def _refused(response, status: int, *words: str) -> str:
    assert response.status_code == status, response.content
    detail = response.json()["detail"]
    for word in words:
        assert word in detail, detail
    assert not Run.objects.filter(status=RunStatus.QUEUED).exists()
    return detail


# --- promote -------------------------------------------------------------------------------
def test_it_promotes_what_runs_before_now_once_verified_there(demo, history):
    history.shipped("test", "1.0.0")
    history.shipped("test", "1.1.0")

    response = _promote(api_client(demo.dev), verify=True)

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["environment"], body["version"], body["promoted_from"]) == ("qa", "1.1.0", "test")
    assert body["parameters"] == {"version": "1.1.0"}
    assert body["verify"] is True
    assert AuditEvent.objects.get(verb="run.requested").details["promoted_from"] == "test"


def test_what_runs_before_unverified_is_not_promoted_nor_an_older_version(demo, history):
    history.shipped("test", "1.1.0")
    history.deploy("test", "1.2.0")  # deployed, never verified: nothing is offered

    _refused(
        _promote(api_client(demo.dev)),
        409,
        "Nothing to promote: hello-web 1.2.0 has not been verified on Test",
        "run its verify action on Test",
    )


def test_a_version_replaced_before_since_its_verification_is_refused(demo, history):
    history.shipped("test", "1.0.0")
    history.shipped("test", "1.1.0")

    response = _promote(api_client(demo.dev), version="1.0.0")

    _refused(response, 409, "hello-web 1.0.0 was replaced on Test since its verification")


def test_a_version_rolled_back_before_is_refused_with_the_reason(demo, history):
    history.shipped("test", "2.0.0")
    broken = history.shipped("test", "2.1.0")
    history.deploy("test", "2.0.0", rollback_of=broken, reason="2.1.0 breaks the header")

    detail = _refused(_promote(api_client(demo.dev), version="2.1.0"), 409)

    assert detail.startswith(
        "hello-web 2.1.0 was rolled back on Test since its verification (run #"
    ), detail
    assert "put 2.0.0 there" in detail
    assert AuditEvent.objects.get(verb="run.refused").details["reason"] == detail
    # Once verified there, what the rollback put back is what is promoted.
    history.verify("test", "2.0.0")
    response = _promote(api_client(demo.dev))
    assert response.status_code == 201, response.content
    assert response.json()["version"] == "2.0.0"


def test_promoting_with_nothing_verified_is_refused(demo, history):
    history.deploy("test", "1.0.0")

    detail = _refused(_promote(api_client(demo.dev)), 409, "has not been verified on Test")

    assert AuditEvent.objects.get(verb="run.refused").details["reason"] == detail


def test_promoting_onto_the_first_environment_is_refused(demo):
    _refused(_promote(api_client(demo.dev), env="test"), 409, "first environment")


def test_promoting_what_runs_there_already_is_refused(demo, history):
    history.shipped("test", "1.0.0")
    history.deploy("qa", "1.0.0")

    _refused(_promote(api_client(demo.dev)), 409, "runs on QA already")


def test_promoting_a_version_that_never_ran_before_is_refused(demo, history):
    history.shipped("test", "1.0.0")

    _refused(_promote(api_client(demo.dev), version="9.9.9"), 409, "never ran on Test")


def test_promoting_a_version_deployed_but_not_verified_breaks_the_rule(demo, history):
    history.deploy("test", "1.3.0")

    response = _promote(api_client(demo.dev), version="1.3.0")

    _refused(response, 409, "has not been verified on Test")
    assert response.json()["missing"]["deployed"] is True


def test_promoting_where_one_may_not_run_is_refused_with_the_reason(demo, history):
    history.shipped("qa", "1.0.0")

    detail = _refused(_promote(api_client(demo.tester), env="production"), 403, "Production")

    reasons = [row.details.get("reason") for row in AuditEvent.objects.filter(outcome="refused")]
    assert detail in reasons


def test_promoting_a_service_one_cannot_see_reads_as_missing(demo):
    outsider = UserFactory(username="outsider")

    response = _promote(api_client(outsider))

    assert response.status_code == 404
    assert response.json()["detail"] == "No service 'hello-web'."


def test_promoting_onto_an_unknown_environment_is_404(demo):
    response = _promote(api_client(demo.dev), env="staging")

    assert response.status_code == 404
    assert response.json()["detail"] == "No environment 'staging'."


def test_a_promotion_asked_again_with_its_key_answers_with_its_run(demo, history):
    history.shipped("test", "1.0.0")
    client = api_client(demo.dev)
    path = "/api/v1/services/hello-web/environments/qa/promote/"
    first = _post(client, path, {}, **{"Idempotency-Key": "promote-1"})
    promoted = Run.objects.get(pk=first.json()["id"])
    Run.objects.filter(pk=promoted.pk).update(
        status=RunStatus.SUCCESSFUL, finished_at=promoted.created_at
    )
    assert _promote(client).status_code == 409

    # 1.0.0 now runs on QA: a new promotion is refused (above); the retry is answered.
    again = _post(client, path, {}, **{"Idempotency-Key": "promote-1"})

    assert again.status_code == 200, again.content
    assert again.json()["id"] == first.json()["id"]


# --- promoted_from on a launch ---------------------------------------------------------------
def test_a_launch_may_say_where_it_was_promoted_from(demo, history):
    history.shipped("test", "1.0.0")
    data = {"service": "hello-web", "action": "deploy", "environment": "qa"}

    response = _post(
        api_client(demo.dev),
        "/api/v1/runs/",
        {**data, "parameters": {"version": "1.0.0"}, "promoted_from": "test"},
    )

    assert response.status_code == 201, response.content
    assert response.json()["promoted_from"] == "test"


@pytest.mark.parametrize(
    ("promoted_from", "message"),
    [("staging", "No promoted_from 'staging'."), ("production", "is not before QA")],
)
def test_a_launch_promoted_from_nowhere_sensible_is_refused(demo, promoted_from, message):
    data = {"service": "hello-web", "action": "deploy", "environment": "qa"}

    response = _post(
        api_client(demo.dev),
        "/api/v1/runs/",
        {**data, "parameters": {"version": "1.0.0"}, "promoted_from": promoted_from},
    )

    assert response.status_code == 400
    assert message in response.json()["errors"]["promoted_from"][0]


# --- roll back -----------------------------------------------------------------------------
def test_it_rolls_back_to_the_version_before(demo, history):
    history.deploy("test", "1.0.0")
    history.deploy("test", "1.1.0")
    current = history.deploy("test", "1.2.0")

    response = _rollback(api_client(demo.dev), reason="1.2.0 breaks the sign-in")

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["version"], body["rollback_of"]) == ("1.1.0", current.pk)
    assert body["reason"] == "1.2.0 breaks the sign-in"


def test_it_rolls_back_to_the_version_asked_for(demo, history):
    history.deploy("test", "1.0.0")
    history.deploy("test", "1.1.0")
    history.deploy("test", "1.2.0")

    response = _rollback(api_client(demo.dev), reason="back to the last good one", version="1.0.0")

    assert response.status_code == 201
    assert response.json()["version"] == "1.0.0"


def test_a_rollback_needs_a_reason(demo, history):
    history.deploy("test", "1.0.0")
    history.deploy("test", "1.1.0")

    response = _rollback(api_client(demo.dev))

    assert response.status_code == 400
    assert response.json()["errors"]["reason"] == ["This field is required."]


def test_rolling_back_with_nothing_deployed_is_refused(demo):
    _refused(_rollback(api_client(demo.dev), reason="why not"), 409, "Nothing runs on Test")


def test_rolling_back_with_nothing_before_is_refused(demo, history):
    history.deploy("test", "1.0.0")

    _refused(
        _rollback(api_client(demo.dev), reason="why not"), 409, "Nothing ran on Test before 1.0.0"
    )


def test_rolling_back_to_a_version_not_offered_is_refused_naming_those_offered(demo, history):
    history.deploy("test", "1.0.0")
    history.deploy("test", "1.1.0")

    detail = _refused(_rollback(api_client(demo.dev), reason="x", version="0.9.0"), 409, "1.0.0")

    assert AuditEvent.objects.get(verb="run.refused").details["reason"] == detail


def test_an_auditor_may_not_roll_back(demo, history):
    history.deploy("test", "1.0.0")
    history.deploy("test", "1.1.0")

    _refused(_rollback(api_client(demo.auditor), reason="x"), 403, "run nothing")


# --- the runs list -------------------------------------------------------------------------
def test_the_runs_list_filters_and_pages(demo, history):
    history.deploy("test", "1.0.0")
    failed = history.deploy("test", "1.1.0", status=RunStatus.FAILED)
    history.deploy("qa", "1.0.0")
    client = api_client(demo.dev)

    everything = client.get("/api/v1/runs/").json()
    on_test = client.get("/api/v1/runs/?environment=test&limit=1").json()
    failures = client.get("/api/v1/runs/?status=failed&service=hello-web&user=dev").json()

    assert everything["count"] == 3
    assert [r["environment"] for r in everything["results"]] == ["qa", "test", "test"]
    assert on_test["count"] == 2 and len(on_test["results"]) == 1
    assert on_test["next"].endswith("limit=1&offset=1") or "offset=1" in on_test["next"]
    assert [r["id"] for r in failures["results"]] == [failed.pk]


@pytest.mark.parametrize(
    ("query", "field"),
    [("status=broken", "status"), ("commit=xyz123", "commit"), ("since=soon", "since")],
)
def test_the_runs_list_refuses_a_bad_filter(demo, query, field):
    response = api_client(demo.dev).get(f"/api/v1/runs/?{query}")

    assert response.status_code == 400
    assert response.json()["errors"][field]
