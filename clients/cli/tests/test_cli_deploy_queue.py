"""The deploy queue from the command line: asking to queue, being told where the run
stands in line while it waits, and the exit code of a run skipped as superseded."""

import json

import pytest

from pushbutton_cli.exits import Exit

DEPLOY = ("deploy", "hello-web", "1.2.3", "--to", "test")


@pytest.mark.parametrize(
    ("flag", "sent"), [("--queue", "queue"), ("--no-queue", "refuse"), (None, None)]
)
def test_queue_says_what_to_do_when_the_service_is_busy(pushbutton, portal, flag, sent):
    result = pushbutton(*DEPLOY, *([flag] if flag else []))

    assert result.exit_code == 0, result.output
    body = json.loads(portal.launches()[0].content)
    assert body.get("when_locked") == sent


def test_a_waiting_deploy_says_its_place_in_line_then_when_it_leaves_it(pushbutton, portal):
    portal.statuses = ["waiting", "waiting", "waiting", "queued", "running", "successful"]

    result = pushbutton(*DEPLOY, "--queue", "--wait")

    assert result.exit_code == Exit.SUCCESSFUL, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Run #1: deploy hello-web 1.2.3 on test: waiting. http://portal.test/runs/1/"
    assert lines[1] == (
        "Run #1 waits in the deploy queue, 2nd in line: Waits for run #7 (Deploy, running) "
        "to end, behind 1 other in line."
    )
    assert "Run #1 waits in the deploy queue, 1st in line: Waits for run #7" in result.stdout
    assert "Run #1 is queued." in lines
    assert lines.index("Run #1 is queued.") < lines.index("PLAY [Deploy]")


def test_10_a_deploy_skipped_as_superseded_exits_with_its_own_code(pushbutton, portal):
    portal.statuses = ["waiting", "superseded"]

    result = pushbutton(*DEPLOY, "--queue", "--wait")

    assert result.exit_code == Exit.SUPERSEDED == 10, result.output
    assert "was SUPERSEDED" in result.stdout
