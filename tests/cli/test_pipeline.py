"""The installed `pushbutton` command, run as a CI job runs it, against the portal (live
server) and a real worker running real playbooks: each outcome and its exit code.

One live server and one worker serve every case (both session-wide); each case is one
short pipeline step or a few.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from apps.accounts.services import token_create
from apps.environments.models import EnvironmentLock
from apps.runs.constants import RunStatus
from apps.runs.models import Run
from tests.factories import ActionFactory, ServiceFactory

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

PUSHBUTTON = Path(sys.executable).parent / "pushbutton"
SHA = "3f9c2ab7e41d0c5b8a6f1e2d3c4b5a6978695a4b"
VERSION_FORM = [{"name": "version", "type": "string", "required": True}]


@pytest.fixture
def pipeline(live_server, celery_worker, test_playbooks, local_env, dev):
    """Services whose deploys succeed (web), fail (broken), take long (slow), pass their
    timeout (stuck), and a way to run `pushbutton` as a job with dev's token."""
    assert PUSHBUTTON.exists(), f"{PUSHBUTTON} is missing: `make` installs ./clients/cli"

    def service(slug, playbook, **fields):
        ActionFactory(
            service=ServiceFactory(slug=slug),
            slug="deploy",
            label="Deploy",
            playbook_version=test_playbooks[playbook],
            form=VERSION_FORM + fields.pop("form", []),
            version_field="version",
            environments=[local_env],
            **fields,
        )

    service("web", "echo")
    service("broken", "nohosts")
    service("slow", "sleep", form=[{"name": "seconds", "type": "integer", "default": 301}])
    service("stuck", "sleep", timeout=3)
    _, key = token_create(user=dev, name="pipeline", acting_user=None, via="cli")
    job = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("GITHUB_", "GITLAB_", "CI_", "PUSHBUTTON_"))
    }
    job.update(PUSHBUTTON_URL=live_server.url, PUSHBUTTON_TOKEN=key, PUSHBUTTON_RETRY_FOR="10")

    def pushbutton(*args, env=None, timeout=180):
        return subprocess.run(
            [str(PUSHBUTTON), *args],
            env={**job, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return SimpleNamespace(run=pushbutton, env=local_env)


def test_a_deploy_that_succeeds_exits_0_after_its_log(pipeline):
    done = pipeline.run(
        "deploy", "web", "1.2.3", "--to", "local", "--wait", "--commit", SHA, "--ref", "main"
    )

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "TASK [Show the parameters]" in done.stdout
    assert lines[-2].startswith("Run #") and "succeeded (rc 0)" in lines[-2]
    assert lines.index(next(x for x in lines if "TASK [Show" in x)) < len(lines) - 2
    run = Run.objects.get()
    assert (run.status, run.version, run.source_commit, run.source_ref) == (
        RunStatus.SUCCESSFUL, "1.2.3", SHA, "main",
    )  # fmt: skip
    assert lines[-1].endswith(f"/runs/{run.pk}/")


def test_a_deploy_that_fails_exits_1(pipeline):
    done = pipeline.run("deploy", "broken", "1.0.0", "--to", "local", "--wait")

    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED" in done.stdout
    assert "No host matched" in done.stdout
    assert Run.objects.get().status == RunStatus.FAILED


def test_a_refused_deploy_exits_4_saying_why(pipeline):
    locked = pipeline.run(
        "lock", "local", "--service", "web", "--reason", "database migration", "--minutes", "30"
    )
    assert locked.returncode == 0, locked.stderr

    refused = pipeline.run("deploy", "web", "1.2.3", "--to", "local", "--wait")

    assert refused.returncode == 4, refused.stdout + refused.stderr
    assert "database migration" in refused.stderr
    assert not Run.objects.exists()
    unlocked = pipeline.run("unlock", "local", "--service", "web")
    assert unlocked.returncode == 0, unlocked.stderr
    assert not [lock for lock in EnvironmentLock.objects.all() if lock.is_active()]


def test_a_wait_that_times_out_exits_8_and_a_canceled_run_5(pipeline):
    waited = pipeline.run("deploy", "slow", "1.0.0", "--to", "local", "--wait", "--timeout", "3",
                          "--json")  # fmt: skip

    assert waited.returncode == 8, waited.stdout + waited.stderr
    run_id = json.loads(waited.stdout)["id"]
    assert "it goes on" in waited.stderr
    assert Run.objects.get(pk=run_id).status in (RunStatus.QUEUED, RunStatus.RUNNING)

    assert pipeline.run("cancel", str(run_id)).returncode == 0
    canceled = pipeline.run("wait", str(run_id), "--timeout", "90")

    assert canceled.returncode == 5, canceled.stdout + canceled.stderr
    assert "was canceled" in canceled.stdout
    # Asked again once it has ended, it answers at once with the same outcome.
    assert pipeline.run("wait", str(run_id)).returncode == 5


def test_a_run_past_its_timeout_exits_6(pipeline):
    done = pipeline.run("deploy", "stuck", "1.0.0", "--to", "local", "--wait")

    assert done.returncode == 6, done.stdout + done.stderr
    assert "TIMED OUT" in done.stdout
    assert Run.objects.get().status == RunStatus.TIMED_OUT


def test_a_retried_job_gets_the_run_it_launched_the_first_time(pipeline):
    github = {
        "GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "web/web", "GITHUB_RUN_ID": "5531",
        "GITHUB_JOB": "deploy", "GITHUB_ACTION": "__run_2", "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_SHA": SHA, "GITHUB_REF_NAME": "main", "GITHUB_SERVER_URL": "https://github.com",
    }  # fmt: skip
    first = pipeline.run("deploy", "web", "1.2.3", "--to", "local", "--json", env=github)
    retried = pipeline.run("deploy", "web", "1.2.3", "--to", "local", "--wait", "--json",
                           env={**github, "GITHUB_RUN_ATTEMPT": "2"})  # fmt: skip

    assert first.returncode == 0, first.stderr
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert json.loads(retried.stdout)["id"] == json.loads(first.stdout)["id"]
    assert "Launched before with this idempotency key" in retried.stderr
    run = Run.objects.get()
    assert run.status == RunStatus.SUCCESSFUL
    assert run.source_pipeline_url == "https://github.com/web/web/actions/runs/5531"
