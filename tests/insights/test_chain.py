"""Real runs through a real worker and ansible-runner on the demo's playbooks: automatic
verification, automatic promotion, dry runs and rollbacks, seen on disk."""

import os

import pytest

from apps.audit.constants import Via
from apps.audit.models import AuditEvent
from apps.runs.constants import RunStatus
from apps.runs.models import Run
from apps.runs.selectors.deployments import current_version
from tests.clients import page_client
from tests.conftest import wait_for
from tests.environments.helpers import hold_lock
from tests.runs.helpers import launch, wait_final

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _served(demo, env) -> str:
    """The version the demo target of `env` serves (its `current` symlink)."""
    current = demo.targets / env / "current"
    return (current / "VERSION").read_text().strip() if current.exists() else ""


def _follow_up(run: Run, action_slug: str) -> Run:
    def started():
        return run.triggered.filter(action_slug=action_slug).first()

    child = wait_for(started, timeout=60, message=f"no {action_slug} after run {run.pk}")
    return wait_final(child)


def _follow_ups_done(run: Run) -> None:
    def done():
        run.refresh_from_db()
        return run.follow_up_done

    wait_for(done, timeout=60, message=f"the follow-ups of run {run.pk} never ran")


def _deploy(demo, env, version, **kwargs) -> Run:
    run = wait_final(launch(demo.dev, demo.deploy, demo.envs[env], {"version": version}, **kwargs))
    assert run.status == RunStatus.SUCCESSFUL, run.error
    return run


def test_a_deploy_that_asks_for_it_is_verified_by_itself(demo, celery_worker):
    deploy = _deploy(demo, "test", "1.0.0", auto_verify=True)

    smoke = _follow_up(deploy, "smoke-test")

    assert smoke.status == RunStatus.SUCCESSFUL
    assert smoke.version == "1.0.0"  # what the smoke test found served
    assert smoke.requested_by == demo.dev
    assert smoke.triggered_by == deploy
    started = AuditEvent.objects.get(verb="run.requested", object_id=str(smoke.pk))
    assert started.via == Via.SYSTEM
    assert started.actor_id is None
    assert started.details["on_behalf_of"] == "dev"
    # The deploy's page shows the verification and its result.
    html = page_client(demo.dev).get(f"/runs/{deploy.pk}/").content.decode()
    assert f"Run #{smoke.pk}: Smoke test on Test (1.0.0)" in html
    assert 'data-status="successful"' in html
    # And QA now takes it.
    assert _deploy(demo, "qa", "1.0.0").version == "1.0.0"
    assert _served(demo, "qa") == "1.0.0"


def test_without_auto_promotion_a_verified_version_stays_where_it_is(demo, celery_worker):
    deploy = _deploy(demo, "test", "1.0.0", auto_verify=True)
    smoke = _follow_up(deploy, "smoke-test")
    _follow_ups_done(smoke)  # what it started, it started in the same transaction

    assert not Run.objects.filter(environment=demo.envs["qa"]).exists()
    assert _served(demo, "qa") == ""


def test_auto_promotion_deploys_a_verified_version_to_qa_on_behalf_of_the_user(demo, celery_worker):
    qa = demo.envs["qa"]
    qa.auto_promote = True
    qa.save()

    deploy = _deploy(demo, "test", "1.2.0", auto_verify=True)
    smoke = _follow_up(deploy, "smoke-test")
    promoted = _follow_up(smoke, "deploy")

    assert promoted.environment == qa
    assert promoted.status == RunStatus.SUCCESSFUL
    assert promoted.version == "1.2.0"
    assert promoted.promoted_from == demo.envs["test"]
    assert promoted.requested_by == demo.dev
    assert _served(demo, "qa") == "1.2.0"
    record = AuditEvent.objects.get(verb="run.requested", object_id=str(promoted.pk))
    assert (record.via, record.actor_id) == (Via.SYSTEM, None)
    assert record.details["on_behalf_of"] == "dev"
    assert record.details["promoted_from"] == "test"
    # Verified on QA by itself in turn; production does not promote automatically.
    qa_smoke = _follow_up(promoted, "smoke-test")
    assert qa_smoke.status == RunStatus.SUCCESSFUL
    _follow_ups_done(qa_smoke)
    assert not Run.objects.filter(environment=demo.envs["production"]).exists()


def test_an_automatic_promotion_meets_the_same_lock_as_anyone(demo, celery_worker):
    qa = demo.envs["qa"]
    qa.auto_promote = True
    qa.save()
    hold_lock(demo.ops, qa, reason="QA database migration")

    deploy = _deploy(demo, "test", "1.2.0", auto_verify=True)
    smoke = _follow_up(deploy, "smoke-test")

    def noted():
        smoke.refresh_from_db()
        return smoke.follow_up_error

    assert "QA database migration" in wait_for(noted, timeout=30, message="no refusal noted")
    assert not Run.objects.filter(environment=qa).exists()
    refusal = AuditEvent.objects.get(verb="run.refused", environment="qa")
    assert refusal.details["on_behalf_of"] == "dev"


def test_a_dry_run_changes_nothing_on_disk_and_takes_no_lock(demo, celery_worker):
    _deploy(demo, "test", "1.0.0")
    before = sorted(os.listdir(demo.targets / "test" / "releases"))

    dry = launch(demo.dev, demo.deploy, demo.envs["test"], {"version": "2.0.0"}, check=True)
    # While it is queued or running, a real deploy is not held by it.
    real = launch(demo.dev, demo.deploy, demo.envs["test"], {"version": "1.0.1"})
    dry, real = wait_final(dry), wait_final(real)

    assert dry.status == RunStatus.SUCCESSFUL
    assert real.status == RunStatus.SUCCESSFUL
    releases = sorted(os.listdir(demo.targets / "test" / "releases"))
    assert "2.0.0" not in releases
    assert releases == sorted([*before, "1.0.1"])
    assert _served(demo, "test") == "1.0.1"
    # A dry run is never what runs there.
    assert current_version(service=demo.service, environment=demo.envs["test"]) == real


def test_roll_back_from_the_page_restores_the_previous_release_on_disk(demo, celery_worker):
    first = _deploy(demo, "test", "1.0.0")
    second = _deploy(demo, "test", "1.1.0")
    assert _served(demo, "test") == "1.1.0"

    response = page_client(demo.dev).post(
        "/services/hello-web/environments/test/rollback/",
        {"to": first.pk, "reason": "1.1.0 is slow", "seen": f":{second.pk}"},
    )

    assert response.status_code == 302, response.content.decode()[-3000:]
    rollback = Run.objects.get(rollback_of=second)
    assert response["Location"] == f"/runs/{rollback.pk}/"
    rollback = wait_final(rollback)
    assert rollback.status == RunStatus.SUCCESSFUL
    assert rollback.version == "1.0.0"
    assert rollback.reason == "1.1.0 is slow"
    assert _served(demo, "test") == "1.0.0"
    record = AuditEvent.objects.get(verb="run.requested", object_id=str(rollback.pk))
    assert record.details["rollback_of"] == second.pk
    assert record.details["reason"] == "1.1.0 is slow"
