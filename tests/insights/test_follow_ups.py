"""What a successful run starts by itself, called directly (the worker's task does the
same): once, on behalf of its user, within its token's limits, and never a downgrade."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.services import token_create
from apps.runs import services
from apps.runs.constants import RunStatus
from apps.runs.models import Run
from tests.environments.helpers import hold_lock
from tests.runs.helpers import launch

pytestmark = pytest.mark.django_db


@pytest.fixture
def qa_promotes(demo):
    qa = demo.envs["qa"]
    qa.auto_promote = True
    qa.save()
    return qa


def test_a_verified_version_is_promoted_once(demo, history, qa_promotes):
    history.deploy("test", "1.1.0")
    verified = history.verify("test", "1.1.0")

    launched = services.run_follow_up(run=verified)
    again = services.run_follow_up(run=verified)  # a redelivered task, the reaper...

    assert [(r.environment.slug, r.version, r.promoted_from.slug) for r in launched] == [
        ("qa", "1.1.0", "test")
    ]
    assert launched[0].triggered_by == verified
    assert launched[0].auto_verify is True
    assert again == []
    assert Run.objects.filter(environment=qa_promotes).count() == 1


def test_without_auto_promotion_nothing_is_launched(demo, history):
    history.deploy("test", "1.1.0")
    verified = history.verify("test", "1.1.0")

    assert services.run_follow_up(run=verified) == []
    assert not Run.objects.filter(environment=demo.envs["qa"]).exists()


def test_what_runs_there_already_is_not_deployed_again(demo, history, qa_promotes):
    history.shipped("test", "1.1.0")
    history.deploy("qa", "1.1.0")
    verified = history.verify("test", "1.1.0")

    assert services.run_follow_up(run=verified) == []
    verified.refresh_from_db()
    assert verified.follow_up_error == ""


def test_a_version_that_qa_ran_before_is_not_promoted_back(demo, history, qa_promotes):
    history.shipped("test", "1.0.0")
    history.deploy("qa", "1.0.0")
    history.deploy("qa", "1.1.0")
    history.deploy("test", "1.0.0")  # test went back to 1.0.0
    verified = history.verify("test", "1.0.0")

    assert services.run_follow_up(run=verified) == []
    verified.refresh_from_db()
    assert "1.0.0 ran there before and was replaced" in verified.follow_up_error


def test_a_version_back_on_test_by_a_rollback_is_not_promoted(demo, history, qa_promotes):
    history.deploy("test", "1.0.0")
    bad = history.deploy("test", "1.1.0")
    history.deploy("test", "1.0.0", rollback_of=bad, reason="slow")
    verified = history.verify("test", "1.0.0")

    assert services.run_follow_up(run=verified) == []
    verified.refresh_from_db()
    assert "by a rollback" in verified.follow_up_error


def test_an_automatic_promotion_keeps_the_token_s_limits(demo, history, qa_promotes):
    token, _ = token_create(
        user=demo.dev,
        name="ci-test-only",
        acting_user=None,
        via="cli",
        environments=[demo.envs["test"]],
    )
    history.deploy("test", "1.1.0")
    verified = history.verify("test", "1.1.0", api_token=token)

    assert services.run_follow_up(run=verified) == []
    verified.refresh_from_db()
    assert "not limited to QA" in verified.follow_up_error


def test_the_verification_of_an_emergency_deploy_follows_it_through_the_freeze(demo, history):
    from apps.environments.constants import FreezeKind
    from apps.environments.models import FreezeWindow

    production = demo.envs["production"]
    now = timezone.now()
    FreezeWindow.objects.create(
        environment=production,
        name="Incident freeze",
        reason="Database failover",
        kind=FreezeKind.ONCE,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=1),
    )
    deploy = history.deploy(
        "production",
        "1.0.1",
        emergency=True,
        emergency_reason="Login is down",
        auto_verify=True,
    )

    [verify] = services.run_follow_up(run=deploy)

    assert verify.action_slug == "smoke-test"
    assert verify.emergency is True
    assert f"Verification of emergency run #{deploy.pk}" in verify.emergency_reason


def test_a_dry_run_is_stopped_by_a_lock_but_not_by_a_freeze(demo):
    hold_lock(demo.ops, demo.envs["test"], reason="Moving the racks")

    with pytest.raises(services.LaunchRefused) as refused:
        launch(demo.dev, demo.deploy, demo.envs["test"], {"version": "1.0.0"}, check=True)

    assert "Moving the racks" in refused.value.reason


def test_only_what_runs_now_can_be_rolled_back(demo, history):
    old = history.deploy("test", "1.0.0")
    history.deploy("test", "1.1.0")

    with pytest.raises(services.LaunchRefused) as refused:
        launch(
            demo.dev, demo.deploy, demo.envs["test"], {"version": "0.9.0"},
            rollback_of=old, reason="why not",
        )  # fmt: skip

    assert refused.value.status == 409
    assert "is not what runs on Test now" in refused.value.reason


def test_a_version_rolled_back_is_not_offered_again_as_a_rollback(demo, history):
    from apps.runs.selectors.deployments import current_version, rollback_targets

    history.deploy("test", "1.0.0")
    history.deploy("test", "1.0.1")
    bad = history.deploy("test", "1.0.2")
    history.deploy("test", "1.0.1", rollback_of=bad, reason="broken")
    test = demo.envs["test"]

    targets = rollback_targets(
        service=demo.service, environment=test, current=current_version(
            service=demo.service, environment=test
        ),
    )  # fmt: skip

    assert [run.version for run in targets] == ["1.0.0"]  # never 1.0.2 again
    assert targets[0].status == RunStatus.SUCCESSFUL
