"""ansible-runner runs with the portal's settings: its loop comes back every 0.25 s (so
events reach the page and the `pushbutton` command within a second, and a cancel is seen
as soon), and it keeps no copy of the output."""

from pathlib import Path

from apps.runs import runner, services
from apps.runs.constants import RunStatus
from tests.factories import ActionFactory
from tests.runs.helpers import launch, queue_held


def test_ansible_runner_gets_the_portals_settings(db, test_playbooks, local_env, dev, monkeypatch):
    action = ActionFactory(playbook_version=test_playbooks["echo"], environments=[local_env])
    with queue_held():
        run = launch(dev, action, local_env, {})
    run = services.run_start(run_id=run.pk, worker="test", pid=0)
    real_run, seen = runner.ansible_runner.run, []

    def run_and_look(**options):
        result = real_run(**options)
        config = result.config
        seen.append(
            (
                config.pexpect_timeout,
                config.settings.get("suppress_output_file"),
                (Path(config.artifact_dir) / "stdout").exists(),
            )
        )
        return result

    monkeypatch.setattr(runner.ansible_runner, "run", run_and_look)
    outcome = runner.execute(
        run, secret_values={}, cancel_requested=lambda: False, heartbeat=lambda: True
    )

    assert outcome.status == RunStatus.SUCCESSFUL, outcome.error
    assert seen == [(0.25, True, False)]
