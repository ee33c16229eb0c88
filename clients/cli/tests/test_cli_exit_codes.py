"""Each exit code of the table in exits.py, one by one, and the paths that lead to it."""

import json

import pytest

from pushbutton_cli.exits import Exit

DEPLOY = ("deploy", "hello-web", "1.2.3", "--to", "test")


# --- 0, 1, 5, 6, 7: the run's outcome -----------------------------------------------------
def test_0_a_deploy_that_succeeds_prints_its_log_then_its_outcome(pushbutton, portal):
    result = pushbutton(*DEPLOY, "--wait")

    assert result.exit_code == Exit.SUCCESSFUL == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Run #1: deploy hello-web 1.2.3 on test: queued. http://portal.test/runs/1/"
    assert lines[1:4] == ["PLAY [Deploy]", "TASK [copy]", "ok"]
    assert lines[4] == "Run #1: deploy hello-web 1.2.3 on test succeeded (rc 0) in 14 s"
    assert lines[5] == "http://portal.test/runs/1/"


@pytest.mark.parametrize(
    ("status", "code", "words"),
    [
        ("failed", 1, "FAILED (rc 2)"),
        ("canceled", 5, "was canceled"),
        ("timed_out", 6, "TIMED OUT"),
        ("lost", 7, "was LOST"),
    ],
)
def test_a_run_that_ends_otherwise_exits_with_its_own_code(pushbutton, portal, status, code, words):
    portal.statuses = ["queued", "running", status]

    result = pushbutton(*DEPLOY, "--wait")

    assert result.exit_code == code, result.output
    assert words in result.stdout.splitlines()[-2]


def test_without_wait_a_launch_exits_0_once_launched(pushbutton, portal):
    portal.statuses = ["failed"]  # whatever happens later

    result = pushbutton(*DEPLOY)

    assert result.exit_code == 0
    assert "Run #1" in result.stdout
    assert [r.url.path for r in portal.requests].count("/api/v1/runs/1/events/") == 0


# --- 2: usage -----------------------------------------------------------------------------
def test_2_a_missing_option_is_a_usage_error(pushbutton, portal):
    result = pushbutton("deploy", "hello-web", "1.2.3")

    assert result.exit_code == Exit.USAGE == 2
    assert "Missing option '--to'" in result.stderr
    assert portal.requests == []


def test_2_without_a_url_it_says_which_variable_to_set(pushbutton):
    result = pushbutton(*DEPLOY, env={"PUSHBUTTON_URL": None})

    assert result.exit_code == 2
    assert "PUSHBUTTON_URL" in result.stderr


def test_2_a_request_the_portal_finds_wrong_says_each_field(pushbutton, portal):
    error = {"detail": "Invalid input.", "errors": {"source": {"commit": ["Not hex."]}}}
    portal.errors["/api/v1/runs/"] = [(400, error)]

    result = pushbutton(*DEPLOY, "--commit", "zzz")

    assert result.exit_code == 2
    assert "Invalid input." in result.stderr
    assert "source.commit: Not hex." in result.stderr


def test_2_a_url_that_is_not_the_portal(pushbutton, portal):
    portal.errors["/api/v1/whoami/"] = [(200, "<!doctype html><title>Sign in</title>")]

    result = pushbutton("whoami")

    assert result.exit_code == 2
    assert "not with JSON" in result.stderr
    assert "is PUSHBUTTON_URL the portal?" in result.stderr


def test_2_a_run_that_does_not_exist(pushbutton):
    result = pushbutton("status", "42")

    assert result.exit_code == 2
    assert "No such run." in result.stderr


def test_2_a_parameter_that_is_not_key_value(pushbutton, portal):
    result = pushbutton("run", "hello-web", "smoke-test", "--on", "test", "-p", "oops")

    assert result.exit_code == 2
    assert "KEY=VALUE" in result.stderr
    assert portal.launches() == []


# --- 3: authentication --------------------------------------------------------------------
def test_3_without_a_token_it_says_so_and_asks_nothing(pushbutton, portal):
    result = pushbutton(*DEPLOY, token=None)

    assert result.exit_code == Exit.AUTHENTICATION == 3
    assert "PUSHBUTTON_TOKEN" in result.stderr
    assert portal.requests == []


def test_3_a_token_the_portal_refuses(pushbutton, portal):
    portal.errors["/api/v1/catalog/"] = [(401, {"detail": "Invalid or revoked token."})]

    result = pushbutton(*DEPLOY)

    assert result.exit_code == 3
    assert "Invalid or revoked token." in result.stderr


def test_there_is_no_token_option(pushbutton):
    result = pushbutton("--token", "pb_secret", *DEPLOY)

    assert result.exit_code == 2
    assert "No such option '--token'" in result.stderr


# --- 4: refused ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "detail"),
    [
        (403, "Your teams may not run hello-web on Production."),
        (409, "hello-web is busy on Test: run #7 holds the deploy lock."),
        (409, "Test is locked until 14:00: release in progress."),
        (409, "hello-web 1.2.3 has not been verified on QA."),
        (422, "This Idempotency-Key was used for another request."),
    ],
)
def test_4_a_refusal_says_why(pushbutton, portal, status, detail):
    portal.errors["/api/v1/runs/"] = [(status, {"detail": detail})]

    result = pushbutton(*DEPLOY, "--wait")

    assert result.exit_code == Exit.REFUSED == 4
    assert detail in result.stderr


# --- 8: the wait timed out ----------------------------------------------------------------
def test_8_timeout_bounds_the_wait_and_the_run_goes_on(pushbutton, portal, clock):
    portal.statuses = ["queued", "running"]  # for ever

    result = pushbutton(*DEPLOY, "--wait", "--timeout", "30")

    assert result.exit_code == Exit.WAIT_TIMEOUT == 8
    assert "still running after 30 s; it goes on. `pushbutton wait 1`" in result.stdout
    assert 30 <= clock.now - 1000 <= 31
    assert not any(r.url.path.endswith("/cancel/") for r in portal.requests)


def test_8_wait_with_a_timeout(pushbutton, portal):
    portal.statuses = ["running"]
    pushbutton(*DEPLOY)

    result = pushbutton("wait", "1", "--timeout", "5")

    assert result.exit_code == 8


# --- 9: the portal cannot be reached --------------------------------------------------------
def test_9_a_portal_that_stays_unreachable(pushbutton, portal, clock):
    portal.drops = 1000

    result = pushbutton(*DEPLOY, env={"PUSHBUTTON_RETRY_FOR": "60"})

    assert result.exit_code == Exit.UNREACHABLE == 9
    assert "cannot be reached" in result.stderr
    assert "gave up after" in result.stderr
    assert 50 <= clock.now - 1000 <= 60


def test_9_a_portal_that_fails(pushbutton, portal):
    portal.errors["/api/v1/catalog/"] = [(500, {"detail": "Server error."})]

    result = pushbutton(*DEPLOY)

    assert result.exit_code == 9


# --- waiting ------------------------------------------------------------------------------
def test_a_lost_connection_while_following_is_retried_and_no_line_twice(pushbutton, portal):
    result_before = pushbutton(*DEPLOY)
    assert result_before.exit_code == 0
    portal.drops = 3  # the next three asks fail: the portal restarts

    result = pushbutton("logs", "1", "--follow")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:3] == ["PLAY [Deploy]", "TASK [copy]", "ok"]
    assert "cannot be reached" in result.stderr
    assert "trying again" in result.stderr


def test_a_lost_connection_at_launch_is_retried_with_the_same_key(pushbutton, portal):
    portal.drops = 2

    result = pushbutton(
        "run", "hello-web", "smoke-test", "--on", "test", env={"PUSHBUTTON_IDEMPOTENCY_KEY": "k-1"}
    )

    assert result.exit_code == 0, result.output
    sent = [r.headers.get("Idempotency-Key") for r in portal.requests if r.method == "POST"]
    assert sent == ["k-1", "k-1", "k-1"]  # two lost on the way, the third answered
    assert len(portal.runs) == 1


@pytest.mark.parametrize(
    ("lines", "pauses"),
    [
        # Queued, then running, silent: asked often, for the line the portal writes as
        # Ansible starts.
        ([], [0.1, 0.1, 0.1]),
        # Once lines come, as often as they do.
        (["PLAY [Deploy]", "TASK [copy]"], [0.1, 0.25, 0.25]),
    ],
)
def test_following_asks_often_until_the_run_printed(pushbutton, portal, clock, lines, pauses):
    portal.statuses = ["queued", "running", "running", "successful"]
    portal.lines = lines

    result = pushbutton(*DEPLOY, "--wait")

    assert result.exit_code == 0, result.output
    assert clock.slept == pauses


def test_waiting_for_a_run_that_ended_answers_at_once(pushbutton, portal, clock):
    portal.statuses = ["failed"]
    pushbutton(*DEPLOY)

    result = pushbutton("wait", "1")

    assert result.exit_code == 1
    assert clock.slept == []
    assert "FAILED" in result.stdout


def test_wait_exits_with_the_outcome_once_it_ends(pushbutton, portal):
    portal.statuses = ["queued", "queued", "running", "running", "canceled"]
    pushbutton(*DEPLOY)

    result = pushbutton("wait", "1")

    assert result.exit_code == 5


# --- --json -------------------------------------------------------------------------------
def test_json_prints_the_run_on_stdout_and_the_log_on_stderr(pushbutton, portal):
    result = pushbutton(*DEPLOY, "--wait", "--json")

    assert result.exit_code == 0
    run = json.loads(result.stdout)
    assert (run["id"], run["status"], run["rc"]) == (1, "successful", 0)
    assert "TASK [copy]" in result.stderr
    assert "TASK [copy]" not in result.stdout


def test_status_as_json(pushbutton, portal):
    pushbutton(*DEPLOY)

    result = pushbutton("status", "1", "--json")

    assert result.exit_code == 0
    assert json.loads(result.stdout)["id"] == 1
