"""A run stays alive while its worker works on it, and ends when a reaper ended it."""

import time
from datetime import timedelta

from django.utils import timezone

from apps.runs import runner, services, tasks
from apps.runs.constants import RunStatus
from tests.factories import RunFactory
from tests.runs.helpers import queue_held


def test_the_heartbeat_goes_on_while_the_playbook_is_fetched(db, settings, monkeypatch):
    # A slow clone of the playbook's repository must not look like a dead worker.
    settings.RUN_HEARTBEAT_SECONDS = 0.1
    run = RunFactory(status=RunStatus.RUNNING, started_at=timezone.now())
    monkeypatch.setattr(runner, "_prepare", lambda *args, **kwargs: time.sleep(0.6))
    beats = []

    outcome = runner.execute(
        run,
        secret_values={},
        cancel_requested=lambda: True,
        heartbeat=lambda: beats.append(1) or True,
    )

    assert len(beats) >= 3
    assert outcome.status == RunStatus.CANCELED


def test_a_run_ended_during_its_preparation_never_starts_ansible(db, monkeypatch):
    run = RunFactory(status=RunStatus.RUNNING, started_at=timezone.now())
    monkeypatch.setattr(runner, "_prepare", lambda *args, **kwargs: None)
    started = []
    monkeypatch.setattr(runner.ansible_runner, "run", lambda **kwargs: started.append(1))

    outcome = runner.execute(
        run, secret_values={}, cancel_requested=lambda: True, heartbeat=lambda: True
    )

    assert started == []
    assert outcome.status == RunStatus.CANCELED


def test_a_run_reaped_as_lost_gets_no_heartbeat_and_its_runner_stops(db):
    run = RunFactory(status=RunStatus.RUNNING, started_at=timezone.now())
    assert services.run_heartbeat(run_id=run.pk) is True
    assert services.run_should_stop(run_id=run.pk) is False

    long_ago = timezone.now() - timedelta(hours=1)
    type(run).objects.filter(pk=run.pk).update(heartbeat_at=long_ago)
    [lost] = services.runs_mark_lost(silent_for=30)
    assert lost.status == RunStatus.LOST

    assert services.run_heartbeat(run_id=run.pk) is False
    run.refresh_from_db()
    assert run.heartbeat_at == long_ago
    assert run.status == RunStatus.LOST
    assert services.run_should_stop(run_id=run.pk) is True


def test_a_run_no_worker_took_ends_failed_and_frees_the_lock(db, settings):
    settings.RUN_QUEUED_MAX_SECONDS = 600
    old = RunFactory(queue="nobody-listens", created_at=timezone.now() - timedelta(seconds=601))
    recent = RunFactory(created_at=timezone.now() - timedelta(seconds=30))

    assert tasks.runs_reap() == 0  # none lost; the unstarted one failed

    old.refresh_from_db()
    recent.refresh_from_db()
    assert old.status == RunStatus.FAILED
    assert "no worker took it within 600 s" in old.error
    assert "'nobody-listens'" in old.error
    assert not old.holds_lock
    assert recent.status == RunStatus.QUEUED


def test_a_late_queue_message_expires_with_the_same_bound(db, settings):
    settings.RUN_QUEUED_MAX_SECONDS = 600
    run = RunFactory()
    with queue_held() as apply_async:
        services.run_enqueue(run=run)
    assert apply_async.call_args.kwargs["expires"] == 600


def test_a_reaper_says_when_a_lost_run_went_on_on_another_host(db):
    long_ago = timezone.now() - timedelta(hours=1)
    there = RunFactory(status=RunStatus.RUNNING, started_at=long_ago, worker="prod@host-b")
    here = RunFactory(status=RunStatus.RUNNING, started_at=long_ago, worker="test@host-a")

    lost = services.runs_mark_lost(silent_for=30, host="host-a")

    assert {run.pk for run in lost} == {there.pk, here.pk}
    there.refresh_from_db()
    here.refresh_from_db()
    assert "Its processes on host-b could not be stopped from host-a" in there.error
    assert "prod@host-b" in there.error
    assert "could not be stopped" not in here.error  # this reaper stops them itself
