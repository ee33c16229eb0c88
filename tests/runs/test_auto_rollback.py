"""The automatic rollback: where an environment asks for it, a failed verification of
what was just deployed puts back the last version verified there, as a rollback the
system launches on behalf of the deployer; never twice in a row."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.runs import services
from apps.runs.constants import RunStatus
from apps.runs.models import Run
from tests.conftest import wait_for
from tests.factories import ActionFactory, RunFactory
from tests.runs.helpers import launch, queue_held, wait_final

pytestmark = pytest.mark.django_db


@pytest.fixture
def test_env(demo):
    env = demo.envs["test"]
    env.auto_rollback = True
    env.save()
    return env


def _failed_verification(demo, version):
    verification = RunFactory(action=demo.smoke, environment=demo.envs["test"], version=version,
                              status=RunStatus.RUNNING, requested_by=demo.dev)  # fmt: skip
    with queue_held():
        return services.run_end(run=verification, status=RunStatus.FAILED, rc=2)


def test_a_failed_verification_rolls_back_to_the_last_verified_version(demo, history, test_env):
    history.shipped("test", "1.0.0")
    history.deploy("test", "1.1.0")  # never verified: skipped
    current = history.deploy("test", "2.0.0")
    verification = _failed_verification(demo, "2.0.0")

    with queue_held():
        (rollback,) = services.run_follow_up(run=verification)

    assert rollback.status == RunStatus.QUEUED
    assert (rollback.version, rollback.rollback_of, rollback.triggered_by) == (
        "1.0.0", current, verification,
    )  # fmt: skip
    assert rollback.requested_by == demo.dev  # on behalf of the deployer
    assert rollback.auto_verify is True
    assert rollback.reason.startswith("Automatic: the verification of 2.0.0 (run #")
    audit = AuditEvent.objects.get(verb="run.requested", object_id=str(rollback.pk))
    assert audit.actor_name == "" and audit.details["on_behalf_of"] == "dev"


def test_it_never_rolls_back_twice_in_a_row(demo, history, test_env):
    history.shipped("test", "1.0.0")
    bad = history.deploy("test", "2.0.0")
    first = history.verify("test", "2.0.0", status=RunStatus.FAILED)
    history.deploy("test", "1.0.0", rollback_of=bad, reason="automatic", triggered_by=first)
    verification = _failed_verification(demo, "1.0.0")

    assert services.run_follow_up(run=verification) == []

    verification.refresh_from_db()
    assert verification.follow_up_error == (
        "Not rolled back by itself: 1.0.0 is on Test by an automatic rollback already "
        f"(run #{Run.objects.get(version='1.0.0', rollback_of=bad).pk}). A person must decide "
        "what runs there."
    )


def test_without_an_earlier_verified_version_it_says_so(demo, history, test_env):
    history.deploy("test", "1.0.0")
    history.deploy("test", "2.0.0")
    verification = _failed_verification(demo, "2.0.0")

    assert services.run_follow_up(run=verification) == []
    verification.refresh_from_db()
    assert verification.follow_up_error == (
        "Not rolled back by itself: no earlier version was verified there."
    )


def test_an_environment_that_does_not_ask_is_left_alone(demo, history):
    history.shipped("test", "1.0.0")
    history.deploy("test", "2.0.0")
    verification = _failed_verification(demo, "2.0.0")

    assert services.run_follow_up(run=verification) == []
    assert not Run.objects.filter(rollback_of__isnull=False).exists()


@pytest.mark.worker
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_through_the_worker_a_bad_deploy_is_rolled_back_and_it_stops_there(
    celery_worker, test_playbooks, local_env, dev
):
    """Deploy 2.0.0 asking for its verification, which fails (no host matches); the
    portal puts 1.0.0 back, verifies it, that fails too: it stops and says why."""
    local_env.auto_rollback = True
    local_env.save()
    form = [{"name": "version", "type": "string", "required": True}]
    deploy = ActionFactory(
        slug="deploy",
        playbook_version=test_playbooks["echo"],
        environments=[local_env],
        version_field="version",
        form=form,
    )
    smoke = ActionFactory(
        service=deploy.service,
        slug="smoke",
        kind="verify",
        environments=[local_env],
        playbook_version=test_playbooks["nohosts"],
    )
    earlier = timezone.now() - timedelta(hours=1)
    shipped = dict(environment=local_env, requested_by=dev, status=RunStatus.SUCCESSFUL,
                   created_at=earlier, started_at=earlier, finished_at=earlier)  # fmt: skip
    RunFactory(action=deploy, version="1.0.0", **shipped)
    seeded = RunFactory(action=smoke, version="1.0.0", **shipped).pk

    wait_final(launch(dev, deploy, local_env, {"version": "2.0.0"}, auto_verify=True))

    def chain():
        last = Run.objects.order_by("id").last()
        return last.action_kind == "verify" and last.version == "1.0.0" and last.is_final

    wait_for(chain, timeout=150, message="the rollback and its verification")
    runs = list(Run.objects.filter(pk__gt=seeded).order_by("id"))
    assert [(r.action_slug, r.version, r.status) for r in runs] == [
        ("deploy", "2.0.0", RunStatus.SUCCESSFUL),
        ("smoke", "2.0.0", RunStatus.FAILED),
        ("deploy", "1.0.0", RunStatus.SUCCESSFUL),  # the automatic rollback
        ("smoke", "1.0.0", RunStatus.FAILED),
    ]
    assert runs[2].rollback_of == runs[0] and runs[2].triggered_by == runs[1]
    wait_for(lambda: Run.objects.get(pk=runs[3].pk).follow_up_error, timeout=30)
    assert "by an automatic rollback already" in Run.objects.get(pk=runs[3].pk).follow_up_error
