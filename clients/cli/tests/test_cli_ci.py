"""What the CLI takes from the CI runner: an idempotency key a retry of the job reuses,
and the build's provenance; and what each launch command sends."""

import json

import pytest

GITHUB = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_REPOSITORY": "web/hello-web",
    "GITHUB_RUN_ID": "5531",
    "GITHUB_RUN_ATTEMPT": "1",
    "GITHUB_JOB": "deploy-test",
    "GITHUB_ACTION": "__run_3",
    "GITHUB_SHA": "3f9c2ab7e41d0c5b8a6f1e2d3c4b5a6978695a4b",
    "GITHUB_REF_NAME": "main",
    "GITHUB_SERVER_URL": "https://github.com",
}
GITLAB = {
    "GITLAB_CI": "true",
    "CI_PROJECT_ID": "77",
    "CI_PIPELINE_ID": "881",
    "CI_JOB_ID": "4410",
    "CI_JOB_NAME": "deploy-test",
    "CI_COMMIT_SHA": "b" * 40,
    "CI_COMMIT_TIMESTAMP": "2026-03-01T11:58:00+00:00",
    "CI_COMMIT_REF_NAME": "main",
    "CI_PROJECT_URL": "https://gitlab.example.com/web/hello-web",
    "CI_PIPELINE_URL": "https://gitlab.example.com/web/hello-web/-/pipelines/881",
    "CI_JOB_URL": "https://gitlab.example.com/web/hello-web/-/jobs/4410",
}
DEPLOY = ("deploy", "hello-web", "1.2.3", "--to", "test")


def _sent(portal) -> list[tuple[str, dict]]:
    return [
        (r.headers["Idempotency-Key"], json.loads(r.content))
        for r in portal.requests
        if r.method == "POST"
    ]


def test_a_rerun_of_the_same_github_job_reuses_the_key_and_gets_the_same_run(pushbutton, portal):
    first = pushbutton(*DEPLOY, env=GITHUB)
    rerun = pushbutton(*DEPLOY, env={**GITHUB, "GITHUB_RUN_ATTEMPT": "2"})

    (key, _), (again, _) = _sent(portal)
    assert key == again and key.startswith("github-")
    assert len(portal.runs) == 1
    assert "GitHub Actions run 5531, job deploy-test, step __run_3" in first.stderr
    assert "Launched before with this idempotency key: run #1" in rerun.stderr
    assert rerun.exit_code == 0


@pytest.mark.parametrize(
    "change",
    [{"GITHUB_RUN_ID": "5532"}, {"GITHUB_JOB": "deploy-qa"}, {"GITHUB_ACTION": "__run_4"}],
)
def test_another_github_run_job_or_step_gets_another_key(pushbutton, portal, change):
    pushbutton(*DEPLOY, env=GITHUB)
    pushbutton(*DEPLOY, env={**GITHUB, **change})

    (first, _), (second, _) = _sent(portal)
    assert first != second


def test_two_different_launches_in_one_step_get_two_keys(pushbutton, portal):
    pushbutton(*DEPLOY, env=GITHUB)
    pushbutton("run", "hello-web", "smoke-test", "--on", "test", env=GITHUB)

    (first, _), (second, _) = _sent(portal)
    assert first != second
    assert len(portal.runs) == 2


def test_a_retried_gitlab_job_reuses_the_key_though_its_job_id_changes(pushbutton, portal):
    pushbutton(*DEPLOY, env=GITLAB)
    pushbutton(*DEPLOY, env={**GITLAB, "CI_JOB_ID": "4415"})

    (key, _), (again, _) = _sent(portal)
    assert key == again and key.startswith("gitlab-")
    assert len(portal.runs) == 1


def test_elsewhere_the_key_is_random_and_printed(pushbutton, portal):
    result = pushbutton(*DEPLOY)

    ((key, _),) = _sent(portal)
    assert key.startswith("random-")
    assert f"PUSHBUTTON_IDEMPOTENCY_KEY={key}" in result.stderr


def test_a_given_key_is_used(pushbutton, portal):
    pushbutton(*DEPLOY, "--idempotency-key", "release-1.2.3")

    assert _sent(portal)[0][0] == "release-1.2.3"


def test_a_github_launch_carries_its_build(pushbutton, portal):
    pushbutton(*DEPLOY, env=GITHUB)

    source = _sent(portal)[0][1]["source"]
    assert source["commit"] == GITHUB["GITHUB_SHA"]
    assert source["ref"] == "main"
    assert source["repository"] == "https://github.com/web/hello-web"
    assert source["pipeline_url"] == "https://github.com/web/hello-web/actions/runs/5531"


def test_a_gitlab_launch_carries_its_build(pushbutton, portal):
    pushbutton(*DEPLOY, env=GITLAB)

    assert _sent(portal)[0][1]["source"] == {
        "commit": "b" * 40,
        "committed_at": "2026-03-01T11:58:00+00:00",
        "ref": "main",
        "repository": GITLAB["CI_PROJECT_URL"],
        "pipeline_url": GITLAB["CI_PIPELINE_URL"],
        "job_url": GITLAB["CI_JOB_URL"],
    }


def test_options_say_the_build_or_that_there_is_none(pushbutton, portal):
    pushbutton(*DEPLOY, "--commit", "abc1234", "--ref", "v1.2.3", env=GITLAB)
    pushbutton(*DEPLOY, "--no-source", env=GITLAB)
    pushbutton(*DEPLOY)

    (_, given), (_, none), (_, outside) = _sent(portal)
    assert (given["source"]["commit"], given["source"]["ref"]) == ("abc1234", "v1.2.3")
    assert given["source"]["pipeline_url"] == GITLAB["CI_PIPELINE_URL"]
    assert none["source"] is None
    assert outside["source"] is None


def test_a_build_without_a_commit_is_a_usage_error(pushbutton, portal):
    result = pushbutton(*DEPLOY, "--ref", "main")

    assert result.exit_code == 2
    assert "--commit" in result.stderr
    assert portal.launches() == []


# --- what each command sends ---------------------------------------------------------------
def test_deploy_names_the_version_in_the_actions_version_field(pushbutton, portal):
    pushbutton(*DEPLOY, "-p", "note=hotfix", "--verify", "--check")

    body = _sent(portal)[0][1]
    assert body["action"] == "deploy"
    assert body["parameters"] == {"note": "hotfix", "version": "1.2.3"}
    assert (body["verify"], body["check"]) == (True, True)


def test_deploy_of_a_service_not_in_the_catalog_is_a_usage_error(pushbutton, portal):
    result = pushbutton("deploy", "billing", "1.0.0", "--to", "test")

    assert result.exit_code == 2
    assert "No service 'billing'" in result.stderr


def test_run_sends_text_and_typed_parameters(pushbutton, portal):
    pushbutton(
        "run", "hello-web", "smoke-test", "--on", "qa",
        "-p", "url=https://x", "-p", "retries:=3", "-p", "hosts:=[\"a\", \"b\"]",
    )  # fmt: skip

    body = _sent(portal)[0][1]
    assert body["parameters"] == {"url": "https://x", "retries": 3, "hosts": ["a", "b"]}
    assert (body["action"], body["environment"]) == ("smoke-test", "qa")


def test_promote_and_rollback_ask_the_server_to_choose(pushbutton, portal):
    pushbutton("promote", "hello-web", "--to", "qa")
    pushbutton("rollback", "hello-web", "--on", "qa", "--to", "1.0.0", "--reason", "broken")

    promote, rollback = (r for r in portal.requests if r.method == "POST")
    assert promote.url.path == "/api/v1/services/hello-web/environments/qa/promote/"
    assert json.loads(promote.content)["version"] == ""
    assert "source" not in json.loads(promote.content)  # it carries the promoted run's
    assert rollback.url.path == "/api/v1/services/hello-web/environments/qa/rollback/"
    assert json.loads(rollback.content)["reason"] == "broken"
    assert json.loads(rollback.content)["version"] == "1.0.0"


def test_a_rollback_needs_a_reason(pushbutton, portal):
    result = pushbutton("rollback", "hello-web", "--on", "qa")

    assert result.exit_code == 2
    assert portal.launches() == []


def test_lock_and_unlock(pushbutton, portal):
    locked = pushbutton(
        "lock", "test", "--service", "hello-web", "--reason", "release", "--minutes", "30"
    )
    unlocked = pushbutton("unlock", "test", "--service", "hello-web")

    assert locked.exit_code == unlocked.exit_code == 0, locked.output + unlocked.output
    create, release = (r for r in portal.requests if r.method == "POST")
    assert json.loads(create.content) == {
        "reason": "release",
        "service": "hello-web",
        "minutes": 30,
    }
    assert release.url.path == "/api/v1/environments/test/locks/1/unlock/"
    assert "Unlocked lock #1 on test." in unlocked.stdout


def test_unlock_with_no_lock_holding_says_so(pushbutton):
    result = pushbutton("unlock", "test")

    assert result.exit_code == 2
    assert "No lock holds for every service on test." in result.stderr


def test_whoami(pushbutton):
    result = pushbutton("whoami")

    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == "ci (developer) on http://portal.test"
    assert "web: run every service on test" in result.stdout


def test_runs_lists_with_filters(pushbutton, portal):
    pushbutton(*DEPLOY)

    result = pushbutton("runs", "--on", "test", "--commit", "abc1234", "--json")

    assert result.exit_code == 0
    assert [run["id"] for run in json.loads(result.stdout)] == [1]
    listed = [r for r in portal.requests if r.url.path == "/api/v1/runs/" and r.method == "GET"]
    assert dict(listed[0].url.params) == {"environment": "test", "commit": "abc1234", "limit": "20"}
