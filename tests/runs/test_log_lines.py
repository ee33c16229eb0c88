"""A real run (real worker, real ansible-runner) whose playbook prints every line
separator but "\n", terminal escape sequences and a NUL: its page, download, search
and `#L` windows number its lines as ansible-runner did, each once, and hold only text."""

import re

import pytest
from django.test import Client

from apps.runs.constants import RunStatus
from tests.factories import ActionFactory
from tests.runs.helpers import launch, wait_final

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

SHOWN = "LS\ufffdPS\ufffdVT\u240bFF\u240cFS\u241cGS\u241dRS\u241eNEL\ufffdCR\u240dend"
# What a terminal or an editor could take for a line break, or a command.
NOT_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def _ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<div class="line[^"]*" id="L(\d+)"', html)]


def test_a_real_runs_lines_are_numbered_once_and_hold_only_text(
    celery_worker, test_playbooks, local_env, dev
):
    action = ActionFactory(playbook_version=test_playbooks["separators"], environments=[local_env])
    run = wait_final(launch(dev, action, local_env))
    assert run.status == RunStatus.SUCCESSFUL, run.error
    client = Client()
    client.force_login(dev)
    every = list(range(1, run.line_count + 1))

    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert _ids(page) == every

    response = client.get(f"/runs/{run.pk}/log/download/")
    download = b"".join(response.streaming_content).decode()
    assert not NOT_TEXT.search(download)
    assert len(download.splitlines()) == run.line_count  # no other break, in any reader
    lines = download.removesuffix("\n").split("\n")
    assert [int(line.split("\t", 1)[0]) for line in lines] == every
    task = next(n for n, line in enumerate(lines, 1) if "TASK [name " in line)
    message = next(n for n, line in enumerate(lines, 1) if '"msg": "msg ' in line)
    assert f"\tTASK [name {SHOWN}] ***" in lines[task - 1]
    assert '"msg": "msg LS\ufffdPS\ufffdVT\\u000bFF\\fFS' in lines[message - 1]
    assert (
        "TASK [title  link here clip  c1  reset  bell \u2407 bs \u2408 del \u2421 nul \u2400 end]"
        in download
    )
    assert "pwned" not in download + page and "evil.example" not in download + page

    found = client.get(f"/runs/{run.pk}/log/search/?q=PS").json()
    assert found["hits"] == [[task, 1], [message, 1]]
    assert client.get(f"/runs/{run.pk}/log/search/?q=here clip").json()["hits"][0][0] > message

    window = client.get(f"/runs/{run.pk}/log/window/?line={task}").content.decode()
    assert _ids(window) == every
    assert f'id="L{task}"' in window and window.count(f'id="L{task}"') == 1


def test_a_dry_runs_live_log_reaches_its_last_line(celery_worker, demo):
    # A dry run's diffs once made the live log skip a line ansible-runner had numbered
    # (the page then stopped following, waiting for it): every number comes once.
    run = wait_final(
        launch(demo.dev, demo.deploy, demo.envs["test"], {"version": "1.0.0"}, check=True)
    )
    assert run.status == RunStatus.SUCCESSFUL, run.error
    client = Client()
    client.force_login(demo.dev)

    live = client.get(f"/runs/{run.pk}/log/?after=0").content.decode()

    assert run.line_count > 40
    assert _ids(live) == list(range(1, run.line_count + 1))
