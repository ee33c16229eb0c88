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
from apps.catalog.constants import ActionKind
from apps.environments.models import EnvironmentLock
from apps.runs.constants import RunStatus
from apps.runs.models import Run
from tests.conftest import wait_for
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

    def service(slug, playbook, *, verify=None, **fields):
        web = ServiceFactory(slug=slug)
        if verify:
            ActionFactory(
                service=web,
                slug="smoke-test",
                label="Smoke test",
                kind=ActionKind.VERIFY,
                playbook_version=test_playbooks[verify],
                environments=[local_env],
            )
        ActionFactory(
            service=web,
            slug="deploy",
            label="Deploy",
            playbook_version=test_playbooks[playbook],
            form=VERSION_FORM + fields.pop("form", []),
            version_field="version",
            environments=[local_env],
            **fields,
        )

    service("web", "echo", verify="echo")
    service("broken", "nohosts")
    service("flaky", "echo", verify="nohosts")
    service("slow", "sleep", form=[{"name": "seconds", "type": "integer", "default": 301}])
    service("stuck", "sleep", timeout=3)
    service("paced", "sleep", form=[{"name": "seconds", "type": "integer", "default": 6}])
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

    def start(*args):
        """`pushbutton` started as a job that goes on while the test does more."""
        return subprocess.Popen(
            [str(PUSHBUTTON), *args],
            env=job,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    return SimpleNamespace(run=pushbutton, start=start, env=local_env)


def test_a_deploy_that_succeeds_exits_0_after_its_log(pipeline):
    done = pipeline.run(
        "deploy", "web", "1.2.3", "--to", "local", "--wait", "--commit", SHA, "--ref", "main"
    )

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    # The log opens with the portal's own line, before Ansible's.
    assert lines[1].startswith("Pushbutton runs ") and "from worker " in lines[1]
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


def _launched(count: int) -> list[Run]:
    """The runs once `count` of them exist (a job started in the background launched)."""
    wait_for(lambda: Run.objects.count() >= count, timeout=60, message=f"{count} runs launched")
    return list(Run.objects.order_by("id"))


def test_merges_in_a_row_deploy_in_order_and_an_older_one_never_lands_over_a_newer(pipeline):
    """Three pipelines a moment apart, each asking to queue: the first deploys 2.0.0; an
    older build (1.9.0) waits and is skipped once 2.0.0 succeeded (exit 10); the newest
    (2.1.0) waits behind both and then deploys."""
    deploy = ("deploy", "paced", "--to", "local", "--queue", "--wait", "--timeout", "150")
    first = pipeline.start(deploy[0], deploy[1], "2.0.0", *deploy[2:])
    _launched(1)
    older = pipeline.start(deploy[0], deploy[1], "1.9.0", *deploy[2:])
    _launched(2)
    newest = pipeline.run(deploy[0], deploy[1], "2.1.0", *deploy[2:])
    outputs = [job.communicate(timeout=150) for job in (first, older)]

    assert first.returncode == 0, outputs[0]
    assert older.returncode == 10, outputs[1]
    assert "waits in the deploy queue, 1st in line" in outputs[1][0]
    assert "was SUPERSEDED" in outputs[1][0]
    assert newest.returncode == 0, newest.stdout + newest.stderr
    assert "waits in the deploy queue, 2nd in line" in newest.stdout
    runs = list(Run.objects.order_by("id"))
    left_the_line = {f"Run #{runs[2].pk} is queued.", f"Run #{runs[2].pk} is running."}
    assert left_the_line & set(newest.stdout.splitlines()), newest.stdout
    assert [(run.version, run.status) for run in runs] == [
        ("2.0.0", RunStatus.SUCCESSFUL),
        ("1.9.0", RunStatus.SUPERSEDED),
        ("2.1.0", RunStatus.SUCCESSFUL),
    ]
    assert runs[1].started_at is None
    assert runs[2].started_at >= runs[0].finished_at


def test_a_deploy_with_verify_exits_with_the_outcome_of_its_verification(pipeline):
    verified = pipeline.run("deploy", "web", "1.2.3", "--to", "local", "--verify", "--wait")

    assert verified.returncode == 0, verified.stdout + verified.stderr
    deploy, smoke = Run.objects.order_by("id")
    assert f"Verifying it: run #{smoke.pk} (smoke-test)." in verified.stdout
    assert verified.stdout.splitlines()[-2].startswith(f"Run #{smoke.pk}: ")
    assert (smoke.status, smoke.triggered_by, smoke.version) == (
        RunStatus.SUCCESSFUL, deploy, "1.2.3",
    )  # fmt: skip

    failed = pipeline.run("deploy", "flaky", "1.0.0", "--to", "local", "--verify", "--wait")

    assert failed.returncode == 1, failed.stdout + failed.stderr
    flaky_deploy, flaky_smoke = Run.objects.filter(service__slug="flaky").order_by("id")
    assert flaky_deploy.status == RunStatus.SUCCESSFUL
    assert flaky_smoke.status == RunStatus.FAILED
    assert f"Run #{flaky_smoke.pk}: smoke-test flaky" in failed.stdout.splitlines()[-2]
    assert "FAILED" in failed.stdout.splitlines()[-2]
