"""run_launch, run_start and run_cancel, called directly."""

import json
from unittest import mock

import pytest
from django.utils import timezone

from apps.audit.constants import Outcome, Via
from apps.audit.models import AuditEvent
from apps.catalog.parameters import MASK, ParameterError
from apps.runs import services
from apps.runs.constants import RunStatus
from apps.runs.models import Run
from apps.runs.services import launch as launch_module
from tests.conftest import worker_row
from tests.factories import ActionFactory, EnvironmentFactory, PlaybookVersionFactory
from tests.runs.helpers import launch, queue_held

SECRET = "hunter2-do-not-store"
SECRET_FORM = [
    {"name": "version", "type": "string", "required": True, "pattern": r"^\d+\.\d+\.\d+$"},
    {"name": "db_password", "type": "secret", "required": True},
]


def _refusals():
    return AuditEvent.objects.filter(verb="run.refused")


def test_it_writes_the_run_and_its_audit_row(demo):
    run = launch(demo.dev, demo.deploy, demo.envs["test"], {"version": "1.2.3"})

    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
    assert run.service == demo.service
    assert run.action == demo.deploy
    assert run.environment == demo.envs["test"]
    assert run.parameters == {"version": "1.2.3"}
    assert run.version == "1.2.3"
    assert run.requested_by == demo.dev
    assert run.requested_by_name == "dev"
    version = demo.deploy.playbook_version
    assert run.playbook_version == version
    assert run.playbook_commit == version.commit
    assert run.content_hash == version.content_hash
    assert len(run.content_hash) == 64
    assert run.queue == demo.envs["test"].queue

    audit = AuditEvent.objects.get(verb="run.requested")
    assert audit.object_type == "runs.run"
    assert audit.object_id == str(run.pk)
    assert audit.actor_name == "dev"
    assert audit.via == Via.API
    assert audit.service == "hello-web"
    assert audit.environment == "test"
    assert audit.details["action"] == "deploy"
    assert audit.details["parameters"] == {"version": "1.2.3"}
    assert audit.details["content_hash"] == version.content_hash


def test_it_writes_nothing_when_the_audit_row_fails(demo):
    # The run and its audit row are one transaction: no run without its row.
    with (
        mock.patch.object(launch_module, "audit_record", side_effect=RuntimeError("disk full")),
        pytest.raises(RuntimeError),
    ):
        launch(demo.dev, demo.deploy, demo.envs["test"], {"version": "1.2.3"})

    assert not Run.objects.exists()


def test_it_enqueues_only_after_commit_on_the_environment_queue(
    demo, django_capture_on_commit_callbacks
):
    production = demo.envs["production"]
    production.queue = "production-network"
    production.require_verified = False
    production.save()
    worker_row("production-network", hostname="inside@production")

    with queue_held() as apply_async:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            run = launch(demo.ops, demo.deploy, production, {"version": "1.2.3"})
            assert apply_async.call_count == 0

        assert callbacks  # the enqueue waited for the commit (as did what the audit row told)
        apply_async.assert_called_once()
        assert apply_async.call_args.kwargs["args"] == [run.pk]
        assert apply_async.call_args.kwargs["queue"] == "production-network"


def test_it_does_not_enqueue_a_refused_launch(demo, django_capture_on_commit_callbacks):
    with (
        queue_held() as apply_async,
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(services.LaunchRefused),
    ):
        launch(demo.auditor, demo.deploy, demo.envs["test"], {"version": "1.2.3"})

    # Only the refusal's audit row is told after the commit; nothing is enqueued.
    assert len(callbacks) == 1
    apply_async.assert_not_called()


def test_it_stores_secrets_only_encrypted(demo):
    action = ActionFactory(service=demo.service, form=SECRET_FORM, environments=[demo.envs["test"]])

    run = launch(demo.dev, action, demo.envs["test"], {"version": "1.2.3", "db_password": SECRET})

    run.refresh_from_db()
    assert run.parameters == {"version": "1.2.3", "db_password": MASK}
    assert run.secret_parameters
    assert SECRET not in run.secret_parameters
    assert services.run_secret_values(run=run) == {"db_password": SECRET}
    stored = json.dumps(list(Run.objects.values()), default=str)
    assert SECRET not in stored.replace(run.secret_parameters, "")
    audit = AuditEvent.objects.get(verb="run.requested")
    assert audit.details["parameters"]["db_password"] == MASK
    assert SECRET not in json.dumps(list(AuditEvent.objects.values()), default=str)


def test_it_refuses_an_auditor(demo):
    with pytest.raises(services.LaunchRefused) as refused:
        launch(demo.auditor, demo.deploy, demo.envs["test"], {"version": "1.2.3"})

    assert refused.value.status == 403
    assert "Auditors" in refused.value.reason
    assert not Run.objects.exists()
    row = _refusals().get()
    assert row.actor_name == "auditor"
    assert row.outcome == Outcome.REFUSED
    assert row.environment == "test"
    assert row.details["reason"] == refused.value.reason


def test_it_refuses_an_environment_the_action_is_not_offered_on(demo):
    staging = EnvironmentFactory(slug="staging")

    with pytest.raises(services.LaunchRefused) as refused:
        launch(demo.dev, demo.deploy, staging, {"version": "1.2.3"})

    assert refused.value.status == 403
    assert "not offered on Staging" in refused.value.reason
    assert not Run.objects.exists()
    assert _refusals().get().environment == "staging"


def test_it_refuses_an_action_of_another_service(demo):
    other = ActionFactory(environments=[demo.envs["test"]])

    with pytest.raises(services.LaunchRefused) as refused:
        launch(
            user=demo.dev,
            service=demo.service,
            action=other,
            environment=demo.envs["test"],
            parameters={},
        )

    assert refused.value.status == 400
    assert refused.value.field == "action"
    assert not Run.objects.exists()
    assert _refusals().count() == 1


def test_it_refuses_an_unapproved_playbook_version(demo):
    action = ActionFactory(
        service=demo.service,
        playbook_version=PlaybookVersionFactory(approved_at=None),
        environments=[demo.envs["test"]],
    )

    with pytest.raises(services.LaunchRefused) as refused:
        launch(demo.dev, action, demo.envs["test"])

    assert refused.value.status == 409
    assert "not approved" in refused.value.reason
    assert not Run.objects.exists()
    assert _refusals().get().outcome == Outcome.REFUSED


def test_it_refuses_bad_parameters_field_by_field(demo):
    with pytest.raises(ParameterError) as refused:
        launch(demo.dev, demo.deploy, demo.envs["test"], {"version": "latest"})

    assert list(refused.value.errors) == ["version"]
    assert "pattern" in refused.value.errors["version"][0]
    assert not Run.objects.exists()
    row = _refusals().get()
    assert row.outcome == Outcome.REFUSED
    assert row.details["errors"] == refused.value.errors


@pytest.mark.parametrize(
    ("parameters", "field"),
    [({}, "version"), ({"version": "1.2.3", "colour": "red"}, "colour"), (["1.2.3"], "parameters")],
)
def test_it_refuses_missing_unknown_or_malformed_parameters(demo, parameters, field):
    with pytest.raises(ParameterError) as refused:
        launch(demo.dev, demo.deploy, demo.envs["test"], parameters)

    assert field in refused.value.errors
    assert not Run.objects.exists()
    assert _refusals().count() == 1


def test_it_keeps_a_refused_secret_out_of_the_audit_log(demo):
    action = ActionFactory(service=demo.service, form=SECRET_FORM, environments=[demo.envs["test"]])

    with pytest.raises(ParameterError):
        launch(demo.dev, action, demo.envs["test"], {"version": "bad", "db_password": SECRET})

    assert SECRET not in json.dumps(list(AuditEvent.objects.values()), default=str)


def test_it_starts_a_queued_run_once(demo):
    run = launch(demo.dev, demo.deploy, demo.envs["test"], {"version": "1.2.3"})

    started = services.run_start(run_id=run.pk, worker="worker-1", pid=4242)

    assert started is not None
    assert started.status == RunStatus.RUNNING
    assert started.started_at is not None
    assert started.worker == "worker-1"
    assert started.worker_pid == 4242
    assert AuditEvent.objects.filter(verb="run.started", object_id=str(run.pk)).count() == 1
    assert services.run_start(run_id=run.pk, worker="worker-2", pid=1) is None
    run.refresh_from_db()
    assert run.worker == "worker-1"
    assert AuditEvent.objects.filter(verb="run.started").count() == 1


def test_it_does_not_start_a_canceled_run(demo):
    run = launch(demo.dev, demo.deploy, demo.envs["test"], {"version": "1.2.3"})
    services.run_cancel(run=run, user=demo.dev, via=Via.WEB)

    assert services.run_start(run_id=run.pk, worker="worker-1", pid=4242) is None
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELED


def test_it_cancels_a_queued_run_at_once(demo):
    action = ActionFactory(service=demo.service, form=SECRET_FORM, environments=[demo.envs["test"]])
    run = launch(demo.dev, action, demo.envs["test"], {"version": "1.2.3", "db_password": SECRET})

    services.run_cancel(run=run, user=demo.dev, via=Via.WEB)

    run.refresh_from_db()
    assert run.status == RunStatus.CANCELED
    assert run.finished_at is not None
    assert run.canceled_by_name == "dev"
    assert run.secret_parameters == ""
    row = AuditEvent.objects.get(verb="run.canceled")
    assert row.object_id == str(run.pk)
    assert row.actor_name == "dev"


def test_it_asks_a_running_run_to_stop(demo):
    run = launch(demo.dev, demo.deploy, demo.envs["test"], {"version": "1.2.3"})
    services.run_start(run_id=run.pk, worker="worker-1", pid=4242)

    services.run_cancel(run=run, user=demo.ops, via=Via.WEB)

    run.refresh_from_db()
    # The worker stops it and records how it ended.
    assert run.status == RunStatus.RUNNING
    assert run.cancel_requested_at is not None
    assert run.canceled_by_name == "ops"


def test_it_refuses_to_cancel_a_finished_run(demo):
    run = launch(demo.dev, demo.deploy, demo.envs["test"], {"version": "1.2.3"})
    Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCESSFUL, finished_at=timezone.now())

    with pytest.raises(services.LaunchRefused) as refused:
        services.run_cancel(run=run, user=demo.dev, via=Via.WEB)

    assert refused.value.status == 409
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCESSFUL
    assert run.cancel_requested_at is None
    assert not AuditEvent.objects.filter(verb="run.canceled").exists()


def test_it_refuses_a_cancel_by_another_developer(demo):
    from tests.factories import UserFactory

    run = launch(demo.dev, demo.deploy, demo.envs["test"], {"version": "1.2.3"})

    with pytest.raises(services.LaunchRefused) as refused:
        services.run_cancel(run=run, user=UserFactory(username="dev2"), via=Via.WEB)

    assert refused.value.status == 403
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED


def test_it_refuses_a_version_longer_than_a_run_keeps(demo):
    action = ActionFactory(
        service=demo.service,
        form=[{"name": "release", "type": "string", "required": True}],
        version_field="release",
        environments=[demo.envs["test"]],
    )

    with pytest.raises(ParameterError) as refused:
        launch(demo.dev, action, demo.envs["test"], {"release": "v" * 201})

    assert refused.value.errors == {"release": ["At most 200 characters."]}
    assert not Run.objects.exists()
    run = launch(demo.dev, action, demo.envs["test"], {"release": "v" * 200})
    assert run.version == "v" * 200


def test_a_reported_version_too_long_is_cut_not_lost(demo):
    run = launch(demo.dev, demo.deploy, demo.envs["test"], {"version": "1.2.3"})
    services.run_start(run_id=run.pk, worker="w@host", pid=1)

    services.run_end(run=run, status=RunStatus.SUCCESSFUL, version="9" * 300)

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCESSFUL
    assert run.version == "9" * 200
