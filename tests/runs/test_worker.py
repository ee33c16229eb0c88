"""Runs through a real Celery worker process and real ansible-runner."""

import psutil
import pytest
from django.conf import settings

from apps.audit.constants import Via
from apps.audit.models import AuditEvent
from apps.runs import services
from apps.runs.constants import RunStatus
from apps.runs.events import START_EVENT
from apps.runs.models import Run, RunEvent
from tests.conftest import wait_for
from tests.factories import ActionFactory
from tests.runs.helpers import launch, wait_final, wait_private_dirs_removed

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _processes(cmdline):
    return [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == cmdline]


def test_it_deploys_the_demo_through_the_worker(celery_worker, demo):
    run = wait_final(launch(demo.dev, demo.deploy, demo.envs["test"], {"version": "1.0.0"}))

    assert run.status == RunStatus.SUCCESSFUL, run.error
    assert run.rc == 0
    assert run.version == "1.0.0"
    assert run.host_summary["localhost"]["failed"] == 0
    assert run.host_summary["localhost"]["changed"] >= 3
    current = demo.targets / "test" / "current"
    assert current.is_symlink() and current.readlink().as_posix() == "releases/1.0.0"
    assert (current / "VERSION").read_text() == "1.0.0\n"
    assert "hello-web 1.0.0" in (current / "index.html").read_text()
    events = list(RunEvent.objects.filter(run=run).order_by("counter"))
    assert [e.counter for e in events] == list(range(1, len(events) + 1))
    # The portal's own first line: what runs, where.
    assert events[0].event == START_EVENT
    assert events[0].stdout == (
        f"Pushbutton runs {run.playbook_path} at commit {run.playbook_commit[:12]} "
        f"on localhost, from worker {run.worker}."
    )
    assert events[-1].event == "playbook_on_stats"
    assert any("TASK [Switch current to the new release atomically]" in e.stdout for e in events)
    assert run.started_at and run.finished_at and run.worker
    verbs = list(
        AuditEvent.objects.filter(object_type="runs.run", object_id=str(run.pk))
        .order_by("id")
        .values_list("verb", flat=True)
    )
    assert verbs == ["run.requested", "run.started", "run.finished"]
    wait_private_dirs_removed()


def test_a_run_plays_the_approved_tree_even_when_its_cache_was_changed(
    celery_worker, test_playbooks, local_env, dev
):
    version = test_playbooks["echo"]
    action = ActionFactory(
        playbook_version=version,
        environments=[local_env],
        form=[{"name": "message", "type": "string"}],
    )
    first = wait_final(launch(dev, action, local_env, {"message": "first"}))
    cached = settings.TREES_DIR / version.content_hash / "echo.yml"
    assert cached.is_file()
    cached.chmod(0o644)
    cached.write_text(cached.read_text().replace("message={{", "TAMPERED={{"))

    second = wait_final(launch(dev, action, local_env, {"message": "second"}))

    assert (first.status, second.status) == (RunStatus.SUCCESSFUL, RunStatus.SUCCESSFUL)
    output = "".join(RunEvent.objects.filter(run=second).values_list("stdout", flat=True))
    assert "message=second" in output and "TAMPERED" not in output
    assert "TAMPERED" not in cached.read_text()


def test_cancel_stops_every_process_of_the_run(celery_worker, test_playbooks, local_env, dev):
    action = ActionFactory(
        playbook_version=test_playbooks["sleep"],
        environments=[local_env],
        form=[{"name": "seconds", "type": "integer", "default": 317}],
    )
    run = launch(dev, action, local_env, {"seconds": 317})

    def sleeping():
        return _processes(["sleep", "317"])

    wait_for(sleeping, timeout=60, message="the playbook's sleep never started")
    services.run_cancel(run=run, user=dev, via=Via.API)
    run = wait_final(run, timeout=30)

    assert run.status == RunStatus.CANCELED
    assert run.canceled_by_name == "dev"
    assert sleeping() == []
    # Any ansible process of this test session (its private dirs are under RUNS_TMP_DIR),
    # or any process still carrying the run's marker, would be a leftover.
    run_dirs = str(settings.RUNS_TMP_DIR)
    leftovers = []
    for proc in psutil.process_iter(["cmdline", "environ"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        environ = proc.info["environ"] or {}
        if ("ansible" in cmdline and run_dirs in cmdline) or run.marker in environ.values():
            leftovers.append(proc)
    assert leftovers == []


def test_a_play_that_matched_no_host_has_failed(celery_worker, test_playbooks, local_env, dev):
    action = ActionFactory(playbook_version=test_playbooks["nohosts"], environments=[local_env])
    run = wait_final(launch(dev, action, local_env))

    assert run.status == RunStatus.FAILED
    assert "No host matched" in run.error


def test_a_run_past_its_timeout_is_timed_out(celery_worker, test_playbooks, local_env, dev):
    action = ActionFactory(
        playbook_version=test_playbooks["sleep"],
        environments=[local_env],
        timeout=3,
        form=[{"name": "seconds", "type": "integer"}],
    )
    run = wait_final(launch(dev, action, local_env, {"seconds": 318}), timeout=60)

    assert run.status == RunStatus.TIMED_OUT
    assert _processes(["sleep", "318"]) == []


def test_a_redelivered_task_does_not_run_the_playbook_twice(celery_worker, demo):
    run = wait_final(launch(demo.dev, demo.deploy, demo.envs["test"], {"version": "1.0.1"}))
    events = RunEvent.objects.filter(run=run).count()

    services.run_enqueue(run=Run.objects.get(pk=run.pk))  # as a broker redelivery would
    # The worker's log is the session's: wait for this run's line, not an earlier one's.
    wait_for(
        lambda: f"Run {run.pk} is not queued any more" in celery_worker.log.read_text(),
        timeout=30,
    )

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCESSFUL
    assert RunEvent.objects.filter(run=run).count() == events
    assert AuditEvent.objects.filter(verb="run.started", object_id=str(run.pk)).count() == 1


def test_the_demo_rolls_back_to_the_previous_release_and_smoke_tests_it(celery_worker, demo):
    test = demo.envs["test"]
    for version in ("1.0.0", "1.1.0"):
        run = wait_final(launch(demo.dev, demo.deploy, test, {"version": version}))
        assert run.status == RunStatus.SUCCESSFUL, run.error

    rollback = wait_final(launch(demo.dev, demo.rollback, test))

    assert rollback.status == RunStatus.SUCCESSFUL, rollback.error
    assert rollback.version == "1.0.0"  # reported by the playbook
    current = demo.targets / "test" / "current"
    assert current.readlink().as_posix() == "releases/1.0.0"
    smoke = wait_final(launch(demo.dev, demo.smoke, test))
    assert smoke.status == RunStatus.SUCCESSFUL
    assert RunEvent.objects.filter(run=smoke, stdout__contains="hello-web 1.0.0 is up").exists()


def test_a_dry_run_changes_nothing_on_disk(celery_worker, demo):
    run = launch(
        user=demo.dev,
        action=demo.deploy,
        environment=demo.envs["qa"],
        parameters={"version": "2.0.0"},
        check=True,
    )
    run = wait_final(run)

    assert run.status == RunStatus.SUCCESSFUL, run.error
    assert run.check_mode
    assert not (demo.targets / "qa" / "releases" / "2.0.0").exists()
    assert not (demo.targets / "qa" / "current").exists()
