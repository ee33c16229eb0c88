"""Where a run stopped, at the top of its page: the task that failed on which host, the
first lines of its error and a link to them; "stopped at task N of M" counted from the
pinned playbook; durations as people write them; an exit code, not a bare "rc"."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.runs.constants import RunStatus
from apps.runs.selectors.failure import playbook_task_count, run_failure, run_task_total
from apps.runs.templatetags.run_tags import duration_text
from tests.clients import page_client
from tests.factories import RunFactory
from tests.runs.helpers import RED, RESET, Log

FAILED = (
    f"{RED}fatal: [web2]: FAILED! => {{{RESET}\r\n"
    f'{RED}    "changed": false,{RESET}\r\n'
    f'{RED}    "msg": "No space left on device"{RESET}\r\n'
    f"{RED}}}{RESET}"
)


def _failed_run(demo, **fields):
    run = RunFactory(
        action=demo.deploy, environment=demo.envs["test"], requested_by=demo.dev,
        status=RunStatus.FAILED, started_at=timezone.now() - timedelta(seconds=252),
        finished_at=timezone.now(), rc=2, **fields,
    )  # fmt: skip
    log = Log(run)
    log.add("playbook_on_play_start", "\r\nPLAY [Deploy hello-web] ****")
    log.add("playbook_on_task_start", "\r\nTASK [Check the version] ****", task="Check the version")
    log.add("runner_on_ok", "ok: [web1]", host="web1")
    log.add("playbook_on_task_start", "\r\nTASK [Install] ****", task="Install")
    log.add("runner_on_ok", "ok: [web1]", host="web1")
    log.add("runner_on_failed", FAILED, host="web2", task="Install", failed=True)
    log.add("playbook_on_stats", "\r\nPLAY RECAP ****\r\nweb1 : ok=2\r\nweb2 : failed=1")
    return run


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0.0 s"), (3, "3.0 s"), (9.96, "9.9 s"), (42.7, "42 s"), (252, "4 min 12 s"),
     (3600 + 5 * 60 + 9, "1 h 5 min")],
)  # fmt: skip
def test_durations_read_as_people_write_them(seconds, text):
    assert duration_text(seconds) == text


def test_the_task_count_of_a_playbook_is_read_from_its_file():
    plain = b"""
- hosts: web
  pre_tasks: [{name: a, debug: {}}]
  tasks:
    - {name: b, debug: {}}
    - block: [{name: c, debug: {}}, {name: d, debug: {}}]
      rescue: [{name: only when c or d failed, debug: {}}]
      always: [{name: e, debug: {}}]
  handlers: [{name: only when notified, debug: {}}]
- hosts: db
  gather_facts: false
  tasks: [{name: f, debug: {}}]
"""
    # Gathering Facts of the first play, a to e, f.
    assert playbook_task_count(plain) == 1 + 5 + 1
    # What the file alone cannot tell: roles, includes, a templated gather_facts.
    assert playbook_task_count(b"- hosts: all\n  roles: [web]\n") is None
    assert playbook_task_count(b"- hosts: all\n  tasks: [{include_tasks: more.yml}]\n") is None
    assert playbook_task_count(b"- hosts: all\n  gather_facts: '{{ g }}'\n  tasks: []\n") is None
    assert playbook_task_count(b"- import_playbook: other.yml\n") is None
    assert playbook_task_count(b"{not: [a, playbook") is None


def test_a_failed_run_says_which_task_failed_where_and_stopped_at_which_task_of_all(demo):
    run = _failed_run(demo)

    failure = run_failure(run=run)

    # The demo's deploy.yml: ten tasks, no fact gathering.
    assert run_task_total(run=run) == 10
    assert (failure.task, failure.host) == ("Install", "web2")
    assert failure.lines == [
        "fatal: [web2]: FAILED! => {", '    "changed": false,',
        '    "msg": "No space left on device"', "}",
    ]  # fmt: skip
    assert failure.line == 9  # its first line in the log
    assert (failure.task_number, failure.task_total) == (2, 10)

    html = page_client(demo.dev).get(f"/runs/{run.pk}/").content.decode()
    assert '<span class="task">Install</span> failed on <span class="host">web2</span>' in html
    assert "No space left on device" in html
    assert 'href="#L9">Jump to the error' in html
    assert "Stopped at task <strong>2</strong> of 10" in html
    assert "Duration <span" in html and ">4 min 12 s</span>" in html
    assert "exit code 2" in html and "rc 2" not in html


def test_a_lost_run_stopped_in_the_task_it_was_in_and_a_successful_one_did_not_stop(demo):
    run = RunFactory(
        action=demo.deploy, environment=demo.envs["test"], status=RunStatus.LOST,
        error="Its worker died.",
    )  # fmt: skip
    log = Log(run)
    log.add("playbook_on_task_start", "\r\nTASK [Check] ****", task="Check")
    log.add("playbook_on_task_start", "\r\nTASK [Create] ****", task="Create")

    failure = run_failure(run=run)

    assert (failure.task, failure.host, failure.lines, failure.line) == ("Create", "", [], 0)
    assert (failure.task_number, failure.task_total) == (2, 10)
    run.status = RunStatus.SUCCESSFUL
    assert run_failure(run=run) is None


def test_the_live_page_gets_its_started_time_and_where_it_stopped_as_they_happen(demo):
    run = RunFactory(action=demo.deploy, environment=demo.envs["test"], requested_by=demo.dev)
    client = page_client(demo.dev)
    assert "Waiting for a worker" in client.get(f"/runs/{run.pk}/").content.decode()

    run.status, run.started_at = RunStatus.RUNNING, timezone.now()
    run.save()
    # Started, no output yet: the page that has not shown it gets it, the one that has not.
    quiet = client.get(f"/runs/{run.pk}/log/?after=0").content.decode()
    assert "<dt>Started</dt><dd><time" in quiet and "after=0&amp;started=1" in quiet
    assert "run-facts" not in client.get(f"/runs/{run.pk}/log/?after=0&started=1").content.decode()
    log = Log(run)
    log.add("playbook_on_task_start", "\r\nTASK [Check] ****", task="Check")
    update = client.get(f"/runs/{run.pk}/log/?after=0").content.decode()
    assert 'id="run-facts" class="run-facts" hx-swap-oob="true"' in update
    assert "<dt>Started</dt><dd><time" in update
    assert "<strong>0</strong> of 10 tasks done so far" in update, update[
        update.find("run-progress") :
    ][:600]  # of the playbook's tasks, not those seen

    log.add("runner_on_failed", "fatal: [web1]: FAILED! => boom", host="web1", failed=True)
    run.status, run.finished_at, run.rc = RunStatus.FAILED, timezone.now(), 2
    run.save()
    update = client.get(f"/runs/{run.pk}/log/?after={log.counter - 1}").content.decode()
    assert "Stopped at task <strong>1</strong> of 10" in update
    assert "Jump to the error" in update and "exit code 2" in update
