"""A run's life has one door in and one door out: every way a run starts sends
`run_started`, every way it reaches a final status sends `run_ended`, once each, after
the transaction that wrote the status and its audit row committed.

Worker endings go through the task itself, executed in this process (`apply`), with a
real ansible-runner run of a real playbook."""

import pytest
from django.utils import timezone
from kombu.exceptions import OperationalError

from apps.audit.constants import Via
from apps.audit.models import AuditEvent
from apps.runs import services
from apps.runs.constants import FINAL_STATUSES, RunStatus
from apps.runs.models import Run
from apps.runs.signals import run_ended, run_started
from apps.runs.tasks import run_execute
from tests.environments.helpers import hold_lock
from tests.factories import ActionFactory
from tests.runs.helpers import launch, queue_held

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def heard():
    """What the two signals said, in order: (signal, run id, status as sent)."""
    said = []

    def started(sender, *, run, **kwargs):
        said.append(("started", run.pk, run.status))

    def ended(sender, *, run, **kwargs):
        # What other apps will read: the row as stored, committed.
        assert Run.objects.get(pk=run.pk).status == run.status
        said.append(("ended", run.pk, run.status))

    run_started.connect(started, dispatch_uid="test.started")
    run_ended.connect(ended, dispatch_uid="test.ended")
    yield said
    run_started.disconnect(dispatch_uid="test.started")
    run_ended.disconnect(dispatch_uid="test.ended")


def _action(test_playbooks, local_env, playbook, **fields):
    return ActionFactory(
        playbook_version=test_playbooks[playbook], environments=[local_env], **fields
    )


def _queued(dev, action, local_env, parameters=None) -> Run:
    with queue_held():
        return launch(dev, action, local_env, parameters or {})


def _ends(heard, run) -> list[str]:
    return [status for what, pk, status in heard if what == "ended" and pk == run.pk]


def test_a_run_that_succeeds_starts_and_ends_once(heard, test_playbooks, local_env, dev):
    run = _queued(dev, _action(test_playbooks, local_env, "echo"), local_env)

    run_execute.apply(args=[run.pk])

    assert [(w, s) for w, pk, s in heard if pk == run.pk] == [
        ("started", RunStatus.RUNNING),
        ("ended", RunStatus.SUCCESSFUL),
    ]


def test_a_play_that_fails_ends_failed(heard, test_playbooks, local_env, dev):
    run = _queued(dev, _action(test_playbooks, local_env, "nohosts"), local_env)

    run_execute.apply(args=[run.pk])

    assert _ends(heard, run) == [RunStatus.FAILED]


def test_a_run_over_its_time_ends_timed_out(heard, test_playbooks, local_env, dev):
    action = _action(
        test_playbooks,
        local_env,
        "sleep",
        timeout=2,
        form=[{"name": "seconds", "type": "integer", "default": 30}],
    )
    run = _queued(dev, action, local_env)

    run_execute.apply(args=[run.pk])

    assert _ends(heard, run) == [RunStatus.TIMED_OUT]


def test_a_running_run_canceled_ends_canceled_by_its_worker(heard, test_playbooks, local_env, dev):
    action = _action(
        test_playbooks, local_env, "sleep", form=[{"name": "seconds", "type": "integer"}]
    )
    run = _queued(dev, action, local_env, {"seconds": 30})
    # Asked before the worker looks: it stops the run at its first look.
    Run.objects.filter(pk=run.pk).update(cancel_requested_at=timezone.now())

    run_execute.apply(args=[run.pk])

    assert _ends(heard, run) == [RunStatus.CANCELED]


def test_a_queued_run_canceled_ends_at_once(heard, test_playbooks, local_env, dev):
    run = _queued(dev, _action(test_playbooks, local_env, "echo"), local_env)

    services.run_cancel(run=run, user=dev, via=Via.API)

    assert _ends(heard, run) == [RunStatus.CANCELED]
    assert AuditEvent.objects.filter(verb="run.canceled", object_id=str(run.pk)).count() == 1


def test_a_run_whose_worker_died_ends_lost(heard, test_playbooks, local_env, dev):
    run = _queued(dev, _action(test_playbooks, local_env, "echo"), local_env)
    services.run_start(run_id=run.pk, worker="gone@nowhere", pid=1)

    services.runs_mark_lost(worker="gone@nowhere")

    assert _ends(heard, run) == [RunStatus.LOST]


def test_a_run_no_worker_took_ends_failed(heard, test_playbooks, local_env, dev):
    run = _queued(dev, _action(test_playbooks, local_env, "echo"), local_env)

    services.runs_fail_unstarted(waited_for=0)

    assert _ends(heard, run) == [RunStatus.FAILED]


def test_a_run_the_broker_refused_ends_failed(heard, test_playbooks, local_env, dev):
    action = _action(test_playbooks, local_env, "echo")
    with queue_held() as send:
        send.side_effect = OperationalError("broker gone")
        with pytest.raises(services.LaunchRefused):
            launch(dev, action, local_env, {})

    run = Run.objects.get()
    assert _ends(heard, run) == [RunStatus.FAILED]


def test_a_run_that_meets_a_lock_at_its_start_ends_failed(heard, test_playbooks, local_env, dev):
    run = _queued(dev, _action(test_playbooks, local_env, "echo"), local_env)
    hold_lock(dev, local_env, reason="Hold everything")

    run_execute.apply(args=[run.pk])

    assert [w for w, pk, s in heard if pk == run.pk] == ["ended"]
    assert _ends(heard, run) == [RunStatus.FAILED]


def test_an_ended_run_is_not_ended_twice(heard, test_playbooks, local_env, dev):
    run = _queued(dev, _action(test_playbooks, local_env, "echo"), local_env)
    services.run_cancel(run=run, user=dev, via=Via.API)

    again = services.run_end(run=run, status=RunStatus.FAILED, error="late")

    assert again.status == RunStatus.CANCELED
    assert _ends(heard, run) == [RunStatus.CANCELED]


def _waiting_behind(dev, action, local_env, holder_version, version) -> tuple[Run, Run]:
    with queue_held():
        holder = launch(dev, action, local_env, {"version": holder_version})
        waiting = launch(dev, action, local_env, {"version": version}, when_locked="queue")
    assert waiting.status == RunStatus.WAITING
    return holder, waiting


def _versioned(test_playbooks, local_env):
    return _action(
        test_playbooks,
        local_env,
        "echo",
        form=[{"name": "version", "type": "string"}],
        version_field="version",
    )


def test_a_waiting_run_skipped_by_a_newer_version_ends_superseded(
    heard, test_playbooks, local_env, dev
):
    action = _versioned(test_playbooks, local_env)
    holder, older = _waiting_behind(dev, action, local_env, "2.0.0", "1.0.0")

    with queue_held():
        services.run_end(run=holder, status=RunStatus.SUCCESSFUL, rc=0)

    assert _ends(heard, older) == [RunStatus.SUPERSEDED]
    assert [w for w, pk, s in heard if pk == older.pk] == ["ended"]  # never started


def test_a_waiting_run_canceled_ends_at_once(heard, test_playbooks, local_env, dev):
    action = _versioned(test_playbooks, local_env)
    holder, waiting = _waiting_behind(dev, action, local_env, "1.0.0", "1.1.0")

    services.run_cancel(run=waiting, user=dev, via=Via.API)

    assert _ends(heard, waiting) == [RunStatus.CANCELED]
    assert _ends(heard, holder) == []


def test_a_waiting_run_whose_requester_left_ends_failed_unstarted(
    heard, test_playbooks, local_env, dev
):
    action = _versioned(test_playbooks, local_env)
    holder, waiting = _waiting_behind(dev, action, local_env, "1.0.0", "1.1.0")
    dev.is_active = False
    dev.save()

    with queue_held():
        services.run_end(run=holder, status=RunStatus.FAILED, rc=2)

    assert _ends(heard, waiting) == [RunStatus.FAILED]
    waiting.refresh_from_db()
    assert waiting.started_at is None
    assert waiting.error.startswith("Not started: ")


def test_only_a_final_status_ends_a_run(test_playbooks, local_env, dev):
    run = _queued(dev, _action(test_playbooks, local_env, "echo"), local_env)

    with pytest.raises(ValueError):
        services.run_end(run=run, status=RunStatus.RUNNING)


def test_every_final_status_has_a_way_through_the_door():
    # The tests above end a run in each final status; a new status needs its own.
    covered = {
        RunStatus.SUCCESSFUL,
        RunStatus.FAILED,
        RunStatus.CANCELED,
        RunStatus.TIMED_OUT,
        RunStatus.LOST,
        RunStatus.SUPERSEDED,
    }
    assert covered == set(FINAL_STATUSES)
