"""The promotion rule: QA and production take only a version deployed and then verified
on the environment before them. Checked by the launch service for pages, the API and
the system alike; the history is written straight into the database here."""

import re

import pytest

from apps.audit.constants import Outcome
from apps.audit.models import AuditEvent
from apps.runs import services
from apps.runs.constants import RunStatus
from apps.runs.models import Run
from tests.clients import api_client, api_launch, page_client
from tests.runs.helpers import launch

pytestmark = pytest.mark.django_db


def _refusal(demo, env, version):
    with pytest.raises(services.LaunchRefused) as refused:
        launch(demo.dev, demo.deploy, demo.envs[env], {"version": version})
    return refused.value


def test_qa_refuses_a_version_never_deployed_to_test(demo):
    refused = _refusal(demo, "qa", "1.0.0")

    assert refused.status == 409
    assert refused.reason == (
        "hello-web 1.0.0 has not been verified on Test, and QA accepts only versions verified "
        "there first: deploy it to Test and verify it there."
    )
    assert refused.missing == {
        "environment": "test",
        "version": "1.0.0",
        "deployed": False,
        "verified": False,
        "url": "/services/hello-web/#env-test",
    }
    assert not Run.objects.exists()
    event = AuditEvent.objects.get(verb="run.refused")
    assert event.outcome == Outcome.REFUSED
    assert event.environment == "qa"
    assert "has not been verified on Test" in event.details["reason"]


def test_a_version_deployed_but_not_verified_is_refused_saying_what_to_run(demo, history):
    history.deploy("test", "1.0.0")

    refused = _refusal(demo, "qa", "1.0.0")

    assert "it was deployed there but not verified since: run its verify action on Test" in (
        refused.reason
    )
    assert refused.missing["deployed"] is True


@pytest.mark.parametrize(
    "verification",
    [
        {"status": RunStatus.FAILED},  # the smoke test failed
        {"check_mode": True},  # a dry run verifies nothing
    ],
)
def test_a_failed_or_dry_verification_does_not_count(demo, history, verification):
    history.deploy("test", "1.0.0")
    history.verify("test", "1.0.0", **verification)

    assert _refusal(demo, "qa", "1.0.0").status == 409


def test_a_verification_before_the_deploy_does_not_count(demo, history):
    history.verify("test", "1.0.0")  # checked something else called 1.0.0, earlier
    history.deploy("test", "1.0.0")

    assert _refusal(demo, "qa", "1.0.0").status == 409


def test_qa_takes_a_version_deployed_then_verified_on_test(demo, history):
    history.shipped("test", "1.0.0")

    run = launch(demo.dev, demo.deploy, demo.envs["qa"], {"version": "1.0.0"})

    assert run.status == RunStatus.QUEUED
    assert run.version == "1.0.0"


def test_production_needs_qa_not_only_test(demo, history):
    history.shipped("test", "1.1.0")

    refused = _refusal(demo, "production", "1.1.0")

    assert refused.missing["environment"] == "qa"
    assert "has not been verified on QA" in refused.reason


def test_a_verified_version_replaced_since_is_no_longer_promotable(demo, history):
    history.shipped("test", "1.0.0")
    history.deploy("test", "1.1.0")  # not verified yet

    assert _refusal(demo, "qa", "1.1.0").status == 409
    refused = _refusal(demo, "qa", "1.0.0")
    assert refused.reason.startswith(
        "hello-web 1.0.0 was replaced on Test since its verification (run #"
    )
    assert refused.missing["environment"] == "test"


def test_a_version_rolled_back_since_its_verification_is_refused(demo, history):
    history.shipped("test", "2.0.0")
    broken = history.shipped("test", "2.1.0")
    history.deploy("test", "2.0.0", rollback_of=broken, reason="2.1.0 breaks the header")

    refused = _refusal(demo, "qa", "2.1.0")

    assert "2.1.0 was rolled back on Test since its verification" in refused.reason
    assert "QA accepts only what runs on Test now, verified there" in refused.reason


def test_a_version_put_back_is_promotable_once_verified_again(demo, history):
    history.shipped("test", "1.0.0")
    history.shipped("test", "1.1.0")
    history.deploy("test", "1.0.0")  # back again, not verified in this stay

    assert "not verified since" in _refusal(demo, "qa", "1.0.0").reason
    history.verify("test", "1.0.0")
    assert launch(demo.dev, demo.deploy, demo.envs["qa"], {"version": "1.0.0"}).version == "1.0.0"


def test_dry_runs_skip_the_rule_they_change_nothing(demo):
    run = launch(demo.dev, demo.deploy, demo.envs["production"], {"version": "9.9.9"}, check=True)

    assert run.check_mode is True


def test_test_has_no_rule_it_comes_first(demo):
    assert launch(demo.dev, demo.deploy, demo.envs["test"], {"version": "9.9.9"}).pk


def test_a_rollback_to_a_version_that_ran_there_is_not_held_by_the_rule(demo, history):
    old = history.deploy("production", "0.9.0")  # from before the rule, never through QA
    new = history.deploy("production", "1.0.0")

    run = launch(
        demo.dev,
        demo.deploy,
        demo.envs["production"],
        {"version": "0.9.0"},
        rollback_of=new,
        reason="1.0.0 breaks the login page",
    )

    assert run.rollback_of == new
    assert run.reason == "1.0.0 breaks the login page"
    assert old.version == run.version
    details = AuditEvent.objects.get(verb="run.requested").details
    assert details["rollback_of"] == new.pk
    assert details["reason"] == "1.0.0 breaks the login page"
    assert details["replaces"] == "1.0.0"


def test_a_rollback_needs_a_reason(demo, history):
    history.deploy("test", "1.0.0")
    new = history.deploy("test", "1.1.0")

    with pytest.raises(services.LaunchRefused) as refused:
        launch(demo.dev, demo.deploy, demo.envs["test"], {"version": "1.0.0"}, rollback_of=new)

    assert refused.value.status == 400
    assert refused.value.field == "reason"


def test_the_api_answers_409_with_what_is_missing(demo):
    response = api_launch(api_client(demo.dev), "qa", "1.0.0")

    assert response.status_code == 409
    body = response.json()
    assert body["detail"].startswith("hello-web 1.0.0 has not been verified on Test")
    assert body["missing"]["environment"] == "test"
    assert body["missing"]["url"] == "/services/hello-web/#env-test"


def test_the_page_shows_the_reason_and_links_to_what_is_missing(demo):
    response = page_client(demo.dev).post("/services/hello-web/deploy/qa/", {"version": "1.0.0"})

    html = response.content.decode()
    assert response.status_code == 200
    assert "has not been verified on Test" in html
    assert re.search(r'<a href="/services/hello-web/#env-test">', html)
    assert not Run.objects.exists()


def test_the_api_says_which_launch_field_is_wrong(demo, history):
    history.deploy("test", "0.9.0")
    current = history.deploy("test", "1.0.0")
    demo.smoke.environments.remove(demo.envs["test"])  # nothing to verify with on test
    client = api_client(demo.dev)
    cases = [
        ({"rollback_of": 999999}, "rollback_of", ["No rollback_of '999999'."]),
        ({"rollback_of": current.pk}, "reason", ["Say why you roll back."]),
        (
            {"verify": True},
            "verify",
            ["hello-web has no verify action on Test: nothing to verify with."],
        ),
    ]

    for extra, field, messages in cases:
        response = api_launch(client, "test", "0.9.0", **extra)

        assert response.status_code == 400, response.content
        assert response.json()["errors"] == {field: messages}
    assert Run.objects.count() == 2  # nothing launched
