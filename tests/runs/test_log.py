"""The run log's selectors and views: windows of a big log, search, download, sections,
progress and a dry run's diffs (through the Django test client; the browser side is in
tests/browser/test_log.py)."""

import re

import pytest
from django.test import Client

from apps.accounts.models import Right
from apps.runs import selectors
from apps.runs.constants import RunStatus
from apps.runs.models import Run
from tests.factories import EnvironmentFactory, GrantFactory, RunFactory, TeamFactory, UserFactory
from tests.runs.helpers import GREEN, RED, RESET, Log


@pytest.fixture
def environment(db):
    return EnvironmentFactory(slug="staging")


@pytest.fixture
def owner(environment):
    """A developer whose team may run every service on `environment`."""
    user = UserFactory(username="owner")
    GrantFactory(team=TeamFactory(members=[user]), environment=environment, right=Right.RUN)
    return user


@pytest.fixture
def client(owner):
    client = Client()
    client.force_login(owner)
    return client


@pytest.fixture
def run(owner, environment):
    return RunFactory(requested_by=owner, environment=environment, status=RunStatus.RUNNING)


def numbers(lines) -> list[int]:
    return [line.number for line in lines]


def shown(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<div class="line[^"]*" id="L(\d+)"', html)]


# --- windows of the log ----------------------------------------------------------------
def test_it_gives_the_window_around_a_line_far_from_the_tail(run):
    Log(run).lines(10_000, per_event=7)

    assert numbers(selectors.run_log_window(run=run, line=5000)) == list(range(4501, 5501))
    assert numbers(selectors.run_log_window(run=run, line=1)) == list(range(1, 1001))
    assert numbers(selectors.run_log_window(run=run, line=10_000)) == list(range(9001, 10_001))
    # Beyond the end: the end.
    assert numbers(selectors.run_log_window(run=run, line=99_999)) == list(range(9001, 10_001))


def test_it_gives_earlier_and_later_lines_across_events(run):
    Log(run).lines(100, per_event=7)

    assert numbers(selectors.run_log_before(run=run, line=50, lines=10)) == list(range(40, 50))
    assert numbers(selectors.run_log_later(run=run, line=50, lines=10)) == list(range(51, 61))
    assert numbers(selectors.run_log_later(run=run, line=95, lines=10)) == list(range(96, 101))
    assert selectors.run_log_later(run=run, line=100) == []
    assert numbers(selectors.run_log_before(run=run, line=3)) == [1, 2]


def test_it_finds_the_lines_of_one_event_that_spans_the_whole_window(run):
    Log(run).lines(3000, per_event=3000)

    assert numbers(selectors.run_log_window(run=run, line=1500)) == list(range(1001, 2001))


def test_the_window_page_has_buttons_for_the_lines_around_it(client, run):
    Log(run).lines(5000)

    html = client.get(f"/runs/{run.pk}/log/window/?line=2000").content.decode()

    assert shown(html) == list(range(1501, 2501))
    assert f'hx-get="/runs/{run.pk}/log/earlier/?before=1501"' in html
    assert f'hx-get="/runs/{run.pk}/log/later/?after=2500"' in html

    later = client.get(f"/runs/{run.pk}/log/later/?after=2500").content.decode()
    assert shown(later) == list(range(2501, 4501))
    assert f'hx-get="/runs/{run.pk}/log/later/?after=4500"' in later
    last = client.get(f"/runs/{run.pk}/log/later/?after=4500").content.decode()
    assert shown(last) == list(range(4501, 5001))
    assert "log-later" not in last

    tail = client.get(f"/runs/{run.pk}/log/window/?line=tail").content.decode()
    assert shown(tail) == list(range(4001, 5001))
    assert "log-later" not in tail


@pytest.mark.parametrize("query", ["", "?line=", "?line=-3", "?line=²", "?line=1e3", "?line=x"])
def test_it_refuses_a_window_around_no_line(client, run, query):
    response = client.get(f"/runs/{run.pk}/log/window/{query}")

    assert response.status_code == 400
    assert b"line must be a line number" in response.content


@pytest.mark.parametrize("path", ["log/later/?after=x", "log/earlier/?before=²", "log/later/"])
def test_it_refuses_earlier_or_later_lines_of_no_line(client, run, path):
    assert client.get(f"/runs/{run.pk}/{path}").status_code == 400


@pytest.mark.parametrize("path", ["log/window/?line=1", "log/later/?after=1", "log/search/?q=a"])
def test_it_shows_no_part_of_the_log_to_someone_who_may_not_see_the_run(run, path):
    Log(run).lines(10, text="secret stuff {n}")
    outsider = Client()
    outsider.force_login(UserFactory(username="outsider"))

    response = outsider.get(f"/runs/{run.pk}/{path}")

    assert response.status_code == 404  # as if there were no such run
    assert b"secret stuff" not in response.content


# --- lines: numbers, timestamps, sections ------------------------------------------------
def test_each_line_has_its_number_and_its_event_timestamp(client, run):
    log = Log(run)
    log.add("verbose", "first\r\nsecond")
    log.add("verbose", "third")

    html = client.get(f"/runs/{run.pk}/").content.decode()

    assert shown(html) == [1, 2, 3]
    assert re.search(
        r'id="L2"><a class="ln" href="#L2">2</a><time class="ts" '
        r'datetime="2026-11-27T09:30:01.250Z"[^>]*>09:30:01</time>',
        html,
    )
    assert 'datetime="2026-11-27T09:30:02.250Z"' in html


def test_plays_tasks_and_the_recap_open_sections(client, run):
    log = Log(run)
    log.add("playbook_on_start")
    log.add("playbook_on_play_start", "\r\nPLAY [Deploy] ****")
    log.add("playbook_on_task_start", "\r\nTASK [Install] ****", task="Install")
    log.add("runner_on_failed", f"{RED}fatal: [web1]: FAILED!{RESET}", failed=True, host="web1")
    log.add("playbook_on_stats", "\r\nPLAY RECAP ****\r\nweb1 : ok=0 failed=1")

    html = client.get(f"/runs/{run.pk}/").content.decode()

    assert re.search(r'class="line head play" id="L2".*?aria-label="Fold this play"', html)
    assert re.search(r'class="line head task" id="L4".*?aria-label="Fold this task"', html)
    assert 'class="line head recap" id="L7"' in html
    assert 'class="line failed" id="L5"' in html
    # The blank line Ansible prints before a header is no header.
    assert 'class="line" id="L1"' in html
    assert '<span class="fg31">fatal: [web1]: FAILED!</span>' in html


# --- search -----------------------------------------------------------------------------
def test_it_searches_the_whole_log_not_only_its_tail(client, run):
    log = Log(run)
    log.lines(5000)
    log.add("runner_on_ok", f"{GREEN}ok: [web1] => Needle found, needle again{RESET}")
    log.lines(5000)

    data = client.get(f"/runs/{run.pk}/log/search/?q=NEEDLE").json()

    assert data["hits"] == [[5001, 2]]
    assert data["total"] == 2
    assert data["upto"] == 10_001
    assert data["truncated"] is False


def test_it_lists_the_first_matches_and_counts_them_all_apart(client, run, monkeypatch):
    monkeypatch.setattr(
        selectors.run_log_search, "__kwdefaults__", {"limit": 3, "count": True, "upto": None}
    )
    log = Log(run)
    log.lines(10)

    data = client.get(f"/runs/{run.pk}/log/search/?q=line").json()

    assert data["hits"] == [[1, 1], [2, 1], [3, 1]]
    assert data["total"] is None
    assert data["truncated"] is True
    # Lines stored after the first page are not counted: the page counts them as they come.
    log.lines(5, text="line later {n}")
    counted = client.get(data["count_url"]).json()
    assert (counted["total"], counted["upto"]) == (10, 10)
    assert client.get(f"/runs/{run.pk}/log/search/count/?q=line").json()["total"] == 15


def test_it_searches_the_text_not_the_colour_codes(client, run):
    Log(run).add("runner_on_ok", f"{GREEN}ok{RESET}: [web1]")

    assert client.get(f"/runs/{run.pk}/log/search/?q=0;32").json()["total"] == 0
    assert client.get(f"/runs/{run.pk}/log/search/?q=ok").json()["hits"] == [[1, 1]]


@pytest.mark.parametrize("query", ["", "?q=", "?q=%20%20", "?q=" + "x" * 201])
def test_it_refuses_an_empty_or_huge_search(client, run, query):
    response = client.get(f"/runs/{run.pk}/log/search/{query}")

    assert response.status_code == 400
    assert "q must be some text" in response.json()["detail"]


def test_it_refuses_a_search_with_a_nul_character(client, run):
    # Refused before the view, as any query string with a NUL (portal.middleware).
    response = client.get(f"/runs/{run.pk}/log/search/?q=a%00b")

    assert response.status_code == 400
    assert "NUL character" in response.json()["detail"]


# --- download ---------------------------------------------------------------------------
def test_the_download_has_the_numbers_and_timestamps_of_the_page_without_colours(client, run):
    log = Log(run)
    log.add("verbose", f"{GREEN}ok: [web1]{RESET}\r\n{RED}failed: <b>{RESET}")
    log.add("verbose", "")
    log.add("verbose", "last")

    response = client.get(f"/runs/{run.pk}/log/download/")
    text = b"".join(response.streaming_content).decode()

    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="run-{run.pk}.log"'
    assert text == (
        "1\t2026-11-27T09:30:01.250Z\tok: [web1]\n"
        "2\t2026-11-27T09:30:01.250Z\tfailed: <b>\n"
        "3\t2026-11-27T09:30:03.250Z\tlast\n"
    )
    page = client.get(f"/runs/{run.pk}/").content.decode()
    for line in text.splitlines():
        number, stamp, _ = line.split("\t")
        assert re.search(rf'id="L{number}">.*?datetime="{re.escape(stamp)}"', page)


# --- progress ---------------------------------------------------------------------------
def test_it_shows_tasks_done_of_tasks_seen_and_hosts(client, run):
    log = Log(run)
    log.add("playbook_on_play_start", "PLAY [Deploy]")
    for task in ("Check", "Install", "Switch"):
        log.add("playbook_on_task_start", f"TASK [{task}]", task=task)
        log.add("runner_on_ok", "ok: [web1]", host="web1")
        log.add("runner_on_ok", "ok: [web2]", host="web2")
    log.add("runner_on_failed", "fatal: [web3]", host="web3", failed=True)

    progress = selectors.run_progress(run=run)

    assert (progress.tasks_done, progress.tasks_seen) == (2, 3)
    assert progress.current_task == "Switch"
    assert (progress.hosts_ok, progress.hosts_failed) == (2, 1)
    html = client.get(f"/runs/{run.pk}/").content.decode()
    assert re.search(r'id="run-progress".*?<strong>2</strong> of 3 tasks done so far', html, re.S)
    assert "now: Switch" in html
    assert "2 ok" in html and "1 failed" in html

    # The poller sends it again with the new lines.
    log.add("playbook_on_task_start", "TASK [Verify]", task="Verify")
    update = client.get(f"/runs/{run.pk}/log/?after={log.counter - 1}").content.decode()
    assert 'id="run-progress" class="run-progress" hx-swap-oob="true"' in update
    assert "<strong>3</strong> of 4 tasks" in update
    # ...and not when nothing happened.
    same = client.get(f"/runs/{run.pk}/log/?after={log.counter}").content.decode()
    assert "run-progress" not in same


def test_an_ended_run_counts_every_task_done_and_its_hosts_from_the_recap(run):
    log = Log(run)
    log.add("playbook_on_task_start", "TASK [Only]", task="Only")
    Run.objects.filter(pk=run.pk).update(
        status=RunStatus.FAILED,
        host_summary={"web1": {"ok": 1, "failed": 0}, "web2": {"ok": 0, "unreachable": 1}},
    )
    run.refresh_from_db()

    progress = selectors.run_progress(run=run)

    assert (progress.tasks_done, progress.tasks_seen) == (1, 1)
    assert progress.current_task == ""
    assert (progress.hosts_ok, progress.hosts_failed) == (1, 1)


# --- a dry run's diffs ------------------------------------------------------------------
DIFF = (
    "\x1b[0;31m--- before: /srv/app/VERSION\x1b[0m\r\n"
    "\x1b[0;32m+++ after: /srv/app/VERSION\x1b[0m\r\n"
    "\x1b[0;36m@@ -1 +1 @@\x1b[0m\r\n"
    "\x1b[0;31m-1.0.0\x1b[0m\r\n"
    "\x1b[0;32m+1.0.1\x1b[0m\r\n"
)


def test_a_dry_run_shows_each_tasks_diff_coloured(client, owner, environment):
    run = RunFactory(
        requested_by=owner, environment=environment, status=RunStatus.RUNNING, check_mode=True
    )
    log = Log(run)
    log.add("playbook_on_task_start", "TASK [Write VERSION]", task="Write VERSION")
    log.add(
        "runner_on_file_diff",
        DIFF,
        task="Write VERSION",
        host="web1",
        data={"diff": [{"before": "1.0.0\n", "after": "1.0.1\n"}]},
    )
    log.add("runner_on_ok", "changed: [web1]", host="web1", task="Write VERSION", changed=True)

    html = client.get(f"/runs/{run.pk}/").content.decode()

    assert "What this dry run would change" in html
    assert re.search(r"<summary>Write VERSION <span class=\"muted\">on web1</span>", html)
    assert '<span class="del">-1.0.0</span>' in html
    assert '<span class="add">+1.0.1</span>' in html
    assert '<span class="hunk">@@ -1 +1 @@</span>' in html
    assert '<span class="head">--- before: /srv/app/VERSION</span>' in html

    # The live page gets them when the run ends.
    update = client.get(f"/runs/{run.pk}/log/?after={log.counter}").content.decode()
    assert "run-diffs" not in update
    Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCESSFUL)
    update = client.get(f"/runs/{run.pk}/log/?after={log.counter}").content.decode()
    assert 'id="run-diffs" class="diffs" hx-swap-oob="true"' in update
    assert '<span class="add">+1.0.1</span>' in update


# --- terminal sequences: none reaches the download or the page's text ---------------------
ST, BEL = "\x1b\\", "\x07"
# (what a playbook may print, the text a reader sees of it)
SEQUENCES = {
    "CSI clear screen, cursor home": ("a\x1b[2J\x1b[Hb", "ab"),
    "CSI private mode": ("a\x1b[?1049hb", "ab"),
    "OSC title, BEL": (f"a\x1b]0;pwned{BEL}b", "ab"),
    "OSC title, ST": (f"a\x1b]2;pwned{ST}b", "ab"),
    "OSC 8 hyperlink": (f"a \x1b]8;;https://evil.example/{ST}link\x1b]8;;{ST} b", "a link b"),
    "OSC 52 clipboard": (f"a\x1b]52;c;Y3VybCBldmlsIHwgc2g={BEL}b", "ab"),
    "OSC never ended": ("a\x1b]0;pwned", "a"),
    "DCS": (f"a\x1bPq#0;2;0;0;0{ST}b", "ab"),
    "SOS": (f"a\x1bXhidden{ST}b", "ab"),
    "PM": (f"a\x1b^hidden{ST}b", "ab"),
    "APC": (f"a\x1b_hidden{ST}b", "ab"),
    "ESC c (reset)": ("a\x1bcb", "ab"),
    "ESC 7, ESC 8, ESC ( B": ("a\x1b7\x1b8\x1b(Bb", "ab"),
    "8-bit CSI": ("a\x9b2Jb", "ab"),
    "8-bit OSC": ("a\x9d0;pwned\x9cb", "ab"),
    "a lone ESC": ("ab\x1b", "ab"),
    "BEL": (f"a{BEL}b", "a\u2407b"),
    "backspace": ("pass\x08\x08\x08\x08fail", "pass\u2408\u2408\u2408\u2408fail"),
    "CR overwrite": ("ok: deployed\rfatal: failed", "ok: deployed\u240dfatal: failed"),
    "DEL": ("a\x7fb", "a\u2421b"),
    "NEL and other C1": ("a\x85b\x8fc", "a\ufffdb\ufffdc"),
    "bidi override": ("a\u202eb\u2066c", "a\ufffdb\ufffdc"),
}
PLAIN = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]*")


def _download(client, run) -> str:
    return b"".join(client.get(f"/runs/{run.pk}/log/download/").streaming_content).decode()


@pytest.mark.parametrize("printed,seen", SEQUENCES.values(), ids=SEQUENCES.keys())
def test_no_terminal_sequence_reaches_the_download_or_the_page(client, run, printed, seen):
    Log(run).add("runner_on_ok", f"{GREEN}{printed}{RESET}\r\nnext")

    text = _download(client, run)
    page = client.get(f"/runs/{run.pk}/").content.decode()

    assert text == f"1\t2026-11-27T09:30:01.250Z\t{seen}\n2\t2026-11-27T09:30:01.250Z\tnext\n"
    line = re.search(r'id="L1">.*?<span class="txt">(.*?)</span></div>', page).group(1)
    assert line == f'<span class="fg32">{seen}</span>'
    # The page's text, wherever the run's output shows, is printable: its lines, its tasks.
    body = page[page.index("<main") :]
    assert PLAIN.fullmatch(body.replace("\n", "")), repr(body)
    assert "pwned" not in text + page and "evil.example" not in text + page


def test_task_names_on_the_page_are_plain_text(client, run):
    log = Log(run)
    name = "Deploy\x1b]0;pwned\x07\r\u2028now"
    log.add("playbook_on_task_start", f"TASK [{name}]", task=name)

    page = client.get(f"/runs/{run.pk}/").content.decode()

    assert "pwned" not in page
    assert PLAIN.fullmatch(page[page.index("<main") :].replace("\n", ""))
    assert "Deploy\u240d\ufffdnow" in page


def test_search_finds_the_text_a_sequence_was_removed_from(client, run):
    Log(run).add("runner_on_ok", f"ok: \x1b]8;;https://x/{ST}web1\x1b]8;;{ST} done")

    data = client.get(f"/runs/{run.pk}/log/search/?q=web1 done").json()

    assert data["hits"] == [[1, 1]]
    assert client.get(f"/runs/{run.pk}/log/search/?q=https").json()["total"] == 0


# --- one definition of a line: "\n", as ansible-runner counts them -----------------------
SEPARATORS = "LS\u2028PS\u2029VT\x0bFF\x0cFS\x1cGS\x1dRS\x1eNEL\x85CR\rend"
SHOWN = "LS\ufffdPS\ufffdVT\u240bFF\u240cFS\u241cGS\u241dRS\u241eNEL\ufffdCR\u240dend"


@pytest.fixture
def separated(run) -> Run:
    """Lines 1-2: a task whose name holds every other line separator; 3: its result."""
    log = Log(run)
    log.add("playbook_on_task_start", f"\r\nTASK [{SEPARATORS}] ****", task=SEPARATORS)
    log.add("runner_on_ok", f'ok: [web1] => "{SEPARATORS}"')
    log.lines(3)
    assert run.line_count == 6
    return run


def test_every_other_separator_stays_inside_its_line_on_the_page(client, separated):
    html = client.get(f"/runs/{separated.pk}/").content.decode()

    assert shown(html) == [1, 2, 3, 4, 5, 6]
    assert f"TASK [{SHOWN}] ****" in html
    assert f"ok: [web1] =&gt; &quot;{SHOWN}&quot;" in html


def test_every_other_separator_stays_inside_its_line_in_the_download(client, separated):
    lines = _download(client, separated).split("\n")

    assert lines.pop() == ""
    assert [int(line.split("\t")[0]) for line in lines] == [1, 2, 3, 4, 5, 6]
    assert lines[1].endswith(f"\tTASK [{SHOWN}] ****")
    assert len(_download(client, separated).splitlines()) == 6  # nothing else splits it


def test_search_and_the_window_number_lines_as_the_page_does(client, separated):
    data = client.get(f"/runs/{separated.pk}/log/search/?q=PS").json()
    window = client.get(f"/runs/{separated.pk}/log/window/?line=3").content.decode()

    assert data["hits"] == [[2, 1], [3, 1]]
    assert data["upto"] == 6
    # As shown: the symbol of a control character finds it.
    shown_as = client.get(f"/runs/{separated.pk}/log/search/?q=%E2%90%8Dend").json()
    assert shown_as["hits"] == [[2, 1], [3, 1]]
    assert shown(window) == [1, 2, 3, 4, 5, 6]
    assert numbers(selectors.run_log_window(run=separated, line=3, lines=2)) == [3, 4]
    assert numbers(selectors.run_log_later(run=separated, line=2, lines=2)) == [3, 4]
