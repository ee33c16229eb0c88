"""The run page's live log in Chromium: following, colours and sections, links to a line,
search, download, a 200,000-line run, a dry run's diffs and the progress indicator
(issue #7, expectations 6-11, 14 and 15)."""

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.runs.constants import RunStatus
from apps.runs.models import Run, RunEvent
from tests.browser.helpers import sign_in
from tests.factories import PASSWORD, ActionFactory, RunFactory
from tests.runs.helpers import GREEN, RED, RESET, Log, launch, wait_final

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def signed_in(page, live_server, dev):
    sign_in(page, live_server.url, "dev", PASSWORD)
    return page


@pytest.fixture
def running(dev, local_env):
    return RunFactory(requested_by=dev, environment=local_env, status=RunStatus.RUNNING)


def open_run(page, live_server, run, anchor=""):
    page.goto(f"{live_server.url}/runs/{run.pk}/{anchor}")
    expect(page.locator("#log")).to_be_visible()


def reopen(page, url: str):
    """Opens `url` afresh (not as a jump within the page already open)."""
    page.goto("about:blank")
    page.goto(url)


SHOWN = """n => {
    const line = document.getElementById("L" + n), log = document.getElementById("log");
    if (!line) return false;
    const a = line.getBoundingClientRect(), b = log.getBoundingClientRect();
    return a.bottom > b.top && a.top < b.bottom;
}"""


def in_view(page, line: int):
    """Line `line` is in the part of the log its box shows (waits for it)."""
    page.wait_for_function(SHOWN, arg=line, timeout=10_000)


def out_of_view(page, line: int):
    expect(page.locator(f"#L{line}")).to_be_attached()
    assert not page.evaluate(SHOWN, line), f"line {line} is in view"


# --- 6. following -----------------------------------------------------------------------
def test_the_log_follows_its_end_pauses_when_scrolled_up_and_resumes(
    signed_in, live_server, running
):
    page = signed_in
    log = Log(running)
    log.lines(400)
    open_run(page, live_server, running)
    follow = page.get_by_role("button", name="Resume following")

    # Following by default: new lines arrive and the end stays in view.
    in_view(page, 400)
    expect(follow).to_be_hidden()
    log.lines(50)
    in_view(page, 450)

    # Scrolling up to read pauses it: lines still arrive, the view stays put.
    page.locator("#L300").hover()
    page.mouse.wheel(0, -3000)
    expect(follow).to_be_visible()
    log.lines(50)
    out_of_view(page, 500)

    follow.click()
    in_view(page, 500)
    expect(follow).to_be_hidden()

    # Another tab comes to the front: this one is hidden while lines arrive...
    other = page.context.new_page()
    other.bring_to_front()
    page.evaluate("""() => {
        Object.defineProperty(document, "visibilityState", {value: "hidden", configurable: true});
        Object.defineProperty(document, "hidden", {value: true, configurable: true});
        document.dispatchEvent(new Event("visibilitychange"));
    }""")
    log.lines(200)
    expect(page.locator("#L700")).to_be_attached(timeout=15_000)
    # ...and shown again, it still follows: the newest line in view, and the next ones.
    page.bring_to_front()
    page.evaluate("""() => {
        delete document.visibilityState;
        delete document.hidden;
        document.dispatchEvent(new Event("visibilitychange"));
    }""")
    assert page.evaluate("document.visibilityState") == "visible"
    in_view(page, 700)
    expect(follow).to_be_hidden()
    log.lines(20)
    in_view(page, 720)
    other.close()

    # Lines are never shown twice.
    numbers = [int(n) for n in page.locator("#log .ln").all_inner_texts()]
    assert numbers == list(range(1, 721))


# --- 7. colours, sections, failures ---------------------------------------------------------
def test_colours_render_and_plays_and_tasks_fold_with_their_durations(
    signed_in, live_server, dev, local_env
):
    page = signed_in
    run = RunFactory(requested_by=dev, environment=local_env, status=RunStatus.FAILED)
    log = Log(run)  # events one second apart
    log.add("playbook_on_play_start", "\r\nPLAY [Deploy] ****")
    log.add("playbook_on_task_start", "\r\nTASK [Check] ****", task="Check")
    log.add("runner_on_ok", f"{GREEN}ok: [web1]{RESET}", host="web1")
    log.add("runner_on_ok", f"{GREEN}ok: [web2]{RESET}", host="web2")
    log.add("playbook_on_task_start", "\r\nTASK [Install] ****", task="Install")
    log.add("runner_on_ok", f"{GREEN}ok: [web1]{RESET}", host="web1")
    log.add("runner_on_failed", f"{RED}fatal: [web2]: FAILED! => disk full{RESET}", failed=True)
    log.add("playbook_on_stats", "\r\nPLAY RECAP ****\r\nweb1 : ok=2\r\nweb2 : failed=1")
    open_run(page, live_server, run)

    green = page.locator("#L5 .fg32")
    expect(green).to_have_text("ok: [web1]")
    expect(green).to_have_css("color", "rgb(126, 231, 135)")
    expect(page.locator("#L10 .fg31")).to_have_css("color", "rgb(255, 123, 114)")

    play, check, install = page.locator("#L2"), page.locator("#L4"), page.locator("#L8")
    # Each section says how long it took (to the next one's start).
    expect(page.locator("#L4 .dur")).to_have_text("3.0 s")  # Check: events 2 to 5
    expect(page.locator("#L8 .dur")).to_have_text("3.0 s")  # Install: events 5 to 8
    expect(page.locator("#L2 .dur")).to_have_text("7.0 s")  # the play: events 1 to 8
    # The failed task and its play stand out; the task that went well does not.
    expect(install).to_have_class(re.compile(r"\bhas-failed\b"))
    expect(play).to_have_class(re.compile(r"\bhas-failed\b"))
    expect(check).not_to_have_class(re.compile(r"\bhas-failed\b"))
    assert install.evaluate("e => getComputedStyle(e).backgroundColor") != check.evaluate(
        "e => getComputedStyle(e).backgroundColor"
    )

    # A task folds and unfolds; the play folds with its tasks; the recap never hides.
    fold_check = page.get_by_role("button", name="Fold this task").first
    fold_check.click()
    expect(fold_check).to_have_attribute("aria-expanded", "false")
    expect(page.locator("#L5")).to_be_hidden()
    expect(page.locator("#L6")).to_be_hidden()
    expect(page.locator("#L8")).to_be_visible()
    fold_check.click()
    expect(page.locator("#L5")).to_be_visible()
    page.get_by_role("button", name="Fold this play").click()
    for line in (4, 5, 8, 9, 10):
        expect(page.locator(f"#L{line}")).to_be_hidden()
    expect(page.locator("#L12")).to_be_visible()  # PLAY RECAP
    expect(page.locator("#L13")).to_be_visible()


# --- 8. line numbers, timestamps, #L links ----------------------------------------------------
def test_a_line_link_reopens_the_run_at_that_line_also_beyond_the_first_screen(
    signed_in, live_server, dev, local_env
):
    page = signed_in
    run = RunFactory(requested_by=dev, environment=local_env, status=RunStatus.SUCCESSFUL)
    Log(run).lines(5000)
    open_run(page, live_server, run)

    # Each line has its number and its time; the first screen holds the tail.
    last = page.locator("#L5000")
    expect(last.locator(".ln")).to_have_text("5000")
    expect(last.locator("time.ts")).to_have_text("09:30:00")
    expect(last.locator("time.ts")).to_have_attribute("datetime", "2026-11-27T09:30:00.250Z")
    expect(page.locator("#L123")).to_have_count(0)

    # A line number is a link to that line.
    page.locator("#L4990 .ln").click()
    expect(page).to_have_url(re.compile(r"#L4990$"))
    expect(page.locator("#L4990")).to_have_class(re.compile(r"\btarget\b"))

    # Opened from a link, line 123, which is not in the tail, is loaded and shown.
    reopen(page, f"{live_server.url}/runs/{run.pk}/#L123")
    target = page.locator("#L123")
    expect(target).to_have_class(re.compile(r"\btarget\b"))
    expect(target).to_be_in_viewport()
    expect(target).to_contain_text("line 123")
    expect(page.locator(".line.target")).to_have_count(1)
    # The lines around it can be read on, both ways.
    expect(page.get_by_role("button", name=re.compile("Show later lines"))).to_be_attached()
    page.get_by_role("button", name=re.compile("Show later lines")).click()
    expect(page.locator("#L2623")).to_be_attached()
    assert page.locator("#L5000").count() == 0

    # Resume following goes back to the end.
    page.get_by_role("button", name="Resume following").click()
    in_view(page, 5000)


# --- 9. search ---------------------------------------------------------------------------
def test_search_finds_every_match_in_the_whole_log_and_those_still_arriving(
    signed_in, live_server, running
):
    page = signed_in
    log = Log(running)
    log.lines(3000)
    log.add("runner_on_ok", "needle early, NEEDLE twice")  # line 3001
    log.lines(3000)
    log.add("runner_on_ok", f"{GREEN}a needle near the end{RESET}")  # line 6002
    log.lines(10)
    open_run(page, live_server, running)
    count = page.locator("#log-count")
    expect(page.locator("#L3001")).to_have_count(0)

    page.get_by_label("Search the log").fill("needle")
    expect(count).to_have_text("3 matches")
    # Matches on lines shown are highlighted.
    expect(page.locator("#L6002 mark.hit")).to_have_text("needle")

    # Next goes to the first match, loading the part of the log that holds it.
    page.get_by_role("button", name="Next").click()
    expect(count).to_have_text("1 of 3 matches")
    current = page.locator("mark.current")
    expect(current).to_have_count(1)
    expect(current).to_have_text("needle")
    expect(page.locator("#L3001 mark.hit")).to_have_count(2)
    expect(current).to_be_in_viewport()
    page.get_by_label("Search the log").press("Enter")
    expect(count).to_have_text("2 of 3 matches")
    expect(page.locator("#L3001 mark.hit").nth(1)).to_have_class(re.compile(r"\bcurrent\b"))
    page.get_by_role("button", name="Previous").click()
    page.get_by_role("button", name="Previous").click()
    expect(count).to_have_text("3 of 3 matches")  # wrapped round to the last
    expect(page.locator("#L6002 mark.current")).to_be_in_viewport()

    # While the run goes on, new lines that match are highlighted and counted.
    page.get_by_role("button", name="Resume following").click()
    log.add("runner_on_ok", "a new needle arrives")
    expect(page.locator("#L6013 mark.hit")).to_have_text("needle")
    expect(count).to_have_text(re.compile(r"\b4 matches"))
    page.get_by_role("button", name="Next").click()
    expect(count).to_have_text("4 of 4 matches")

    page.get_by_label("Search the log").fill("no such text")
    expect(count).to_have_text("No matches")
    expect(page.locator("mark")).to_have_count(0)


# --- 10. download --------------------------------------------------------------------------
def test_the_download_is_the_plain_log_with_the_numbers_and_times_of_the_page(
    signed_in, live_server, dev, local_env
):
    page = signed_in
    run = RunFactory(requested_by=dev, environment=local_env, status=RunStatus.SUCCESSFUL)
    log = Log(run)
    log.add("playbook_on_task_start", "\r\nTASK [Install] ****", task="Install")
    log.add("runner_on_ok", f"{GREEN}ok: [web1] => <ok>{RESET}\r\n{RED}second{RESET}")
    open_run(page, live_server, run)

    with page.expect_download() as download:
        page.get_by_role("link", name="Download log").click()
    with open(download.value.path(), encoding="utf-8") as downloaded:
        text = downloaded.read()

    assert "\x1b" not in text
    lines = text.splitlines()
    assert len(lines) == 4
    for line in lines:
        number, stamp, words = line.split("\t")
        shown = page.locator(f"#L{number}")
        expect(shown.locator(".ln")).to_have_text(number)
        expect(shown.locator("time")).to_have_attribute("datetime", stamp)
        expect(shown.locator("time")).to_have_text(stamp[11:19])
        assert shown.locator(".txt").inner_text() == words
    assert lines[2].endswith("\tok: [web1] => <ok>")


# --- 11. a run of 200,000 lines ---------------------------------------------------------------
BIG = 200_000


def big_log(run: Run) -> None:
    """200,000 lines, four to an event, coloured like Ansible's; a unique word on line
    123456 (bulk-inserted, as bench/runpage.py does)."""
    now = timezone.now()
    batch = []
    for n in range(1, BIG // 4 + 1):
        first = (n - 1) * 4 + 1
        texts = [f"{GREEN}ok: [web{n % 8}] => line {first + i}{RESET}" for i in range(4)]
        if first <= 123456 < first + 4:
            texts[123456 - first] = "the unique-word-123456 is here"
        batch.append(
            RunEvent(
                run=run, counter=n, event="runner_item_on_ok", created=now, host="web1",
                start_line=first - 1, end_line=first + 3, stdout="\r\n".join(texts),
            )
        )  # fmt: skip
        if len(batch) == 5000:
            RunEvent.objects.bulk_create(batch)
            batch = []
    RunEvent.objects.bulk_create(batch)
    Run.objects.filter(pk=run.pk).update(line_count=BIG, event_count=BIG // 4)


def test_a_run_of_200000_lines_stays_whole_and_usable(signed_in, live_server, running):
    page = signed_in
    big_log(running)
    open_run(page, live_server, running)

    # The first screen holds the tail, not 200,000 lines.
    in_view(page, BIG)
    assert page.locator("#log .line").count() <= 1000

    # Line 1 and line 200000, by their links.
    reopen(page, f"{live_server.url}/runs/{running.pk}/#L1")
    expect(page.locator("#L1")).to_have_class(re.compile(r"\btarget\b"))
    expect(page.locator("#L1")).to_be_in_viewport()
    reopen(page, f"{live_server.url}/runs/{running.pk}/#L200000")
    expect(page.locator("#L200000")).to_have_class(re.compile(r"\btarget\b"))
    expect(page.locator("#L200000")).to_be_in_viewport()

    # Search covers the whole log, and jumping to the match loads it.
    page.get_by_label("Search the log").fill("unique-word-123456")
    expect(page.locator("#log-count")).to_have_text("1 match")
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#L123456 mark.current")).to_be_in_viewport()
    expect(page.locator("#log-count")).to_have_text("1 of 1 match")
    # Scrolling through the window loaded there works both ways.
    page.get_by_role("button", name=re.compile("Show earlier lines")).click()
    expect(page.locator("#L121000")).to_be_attached()

    # It follows what arrives at the end of a big run, too.
    page.get_by_role("button", name="Resume following").click()
    in_view(page, BIG)
    log = Log(running)
    log.counter, log.line = BIG // 4, BIG
    log.lines(40)
    in_view(page, BIG + 40)
    # Still more: the page keeps the newest lines in order, not ever more of them.
    log.lines(4000)
    in_view(page, BIG + 4040)
    numbers = [int(n) for n in page.locator("#log .ln").all_inner_texts()]
    assert len(numbers) <= 4000
    assert numbers == list(range(numbers[0], BIG + 4041))
    expect(
        page.get_by_role("button", name=f"Show earlier lines (before {numbers[0]})")
    ).to_be_attached()

    # After a reload it is all there: the tail, and line 1 behind its link.
    Run.objects.filter(pk=running.pk).update(status=RunStatus.SUCCESSFUL)
    reopen(page, f"{live_server.url}/runs/{running.pk}/")
    in_view(page, BIG + 4040)
    expect(page.locator(f"#L{BIG + 3041}")).to_be_attached()
    reopen(page, f"{live_server.url}/runs/{running.pk}/#L1")
    expect(page.locator("#L1")).to_contain_text("line 1")


# --- 14. a dry run's diffs ---------------------------------------------------------------------
def test_a_dry_run_shows_what_each_task_would_change(page, live_server, celery_worker, demo):
    sign_in(page, live_server.url, "dev", "pushbutton-dev")
    page.goto(f"{live_server.url}/services/hello-web/deploy/test/")
    page.get_by_label("Version").fill("1.0.0")
    page.get_by_label(re.compile("Dry run")).check()
    page.get_by_role("button", name="Deploy hello-web on Test").click()
    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))

    expect(page.locator("#run-status [data-status]")).to_have_attribute(
        "data-status", "successful", timeout=90_000
    )
    diffs = page.locator("#run-diffs")
    expect(diffs.get_by_role("heading")).to_have_text("What this dry run would change")
    install = diffs.locator("details", has_text="Install the release files")
    expect(install.locator("summary")).to_contain_text("on localhost")
    # Both items of the task's loop, the lines they add coloured.
    added = install.locator(".add")
    expect(added).to_have_text(["+<h1>hello-web 1.0.0</h1>", "+1.0.0"])
    expect(install.locator(".head")).to_contain_text([re.compile(r"index.html$"), "VERSION"])
    colour = "e => getComputedStyle(e).color"
    assert added.first.evaluate(colour) != install.locator("summary").evaluate(colour)
    directory = diffs.locator("details", has_text="Create the release directory")
    expect(directory.locator(".del")).to_contain_text("absent")
    expect(directory.locator(".add")).to_contain_text("directory")
    # Nothing changed: it was a dry run.
    assert not (demo.targets / "test" / "current").exists()


# --- 15. progress ---------------------------------------------------------------------------
def test_the_progress_of_a_running_deploy_moves_with_the_log(
    signed_in, live_server, celery_worker, test_playbooks, local_env, dev, tmp_path
):
    page = signed_in
    go = tmp_path / "go"
    local_env.inventory["all"]["vars"] = {"go_file": str(go)}
    local_env.save()
    action = ActionFactory(
        playbook_version=test_playbooks["wait_then_echo"], environments=[local_env], timeout=120
    )
    run = launch(dev, action, local_env, {})
    open_run(page, live_server, run)
    progress = page.locator("#run-progress")

    # Waiting in its first task: started, not done, of the two tasks the playbook has.
    expect(progress).to_contain_text("0 of 2 tasks done so far", timeout=90_000)
    expect(progress).to_contain_text("now: Wait for the go file")
    expect(progress.locator("progress")).to_have_attribute("max", "2")

    go.touch()
    expect(progress).to_contain_text("2 of 2 tasks done", timeout=60_000)
    expect(progress).to_contain_text("Hosts: 1 ok, 0 failed")
    expect(progress.locator("progress")).to_have_attribute("value", "2")
    assert wait_final(run).status == RunStatus.SUCCESSFUL
    # The log's task sections agree, each with its duration.
    heads = page.locator("#log .line.head.task")
    expect(heads).to_have_count(2)
    expect(heads.first.locator(".dur")).to_have_text(re.compile(r"\d s$"))
    expect(page.locator("#log-poller")).to_have_count(0)


# --- a line is what ends in "\n": other separators and terminal sequences stay inside -------
def test_separators_and_terminal_sequences_stay_inside_their_line(
    signed_in, live_server, dev, local_env
):
    page = signed_in
    run = RunFactory(requested_by=dev, environment=local_env, status=RunStatus.SUCCESSFUL)
    log = Log(run)
    name = "a\u2028b\u2029c\x0bd\x0ce\x1cf\x85g\rh"
    log.add("playbook_on_task_start", f"\r\nTASK [{name}] ****", task=name)
    log.add("runner_on_ok", f"{GREEN}ok: \x1b]0;pwned\x07[web1]\rfatal{RESET}")
    log.lines(3)
    open_run(page, live_server, run)

    rows = page.locator("#log > .line")
    expect(rows).to_have_count(6)
    assert rows.evaluate_all("els => els.map(e => e.id)") == [f"L{n}" for n in range(1, 7)]
    # One row of text each: nothing in them breaks a line.
    heights = rows.evaluate_all("els => els.map(e => e.getBoundingClientRect().height)")
    assert len(set(heights)) == 1, heights
    expect(page.locator("#L2 .txt")).to_have_text(
        "TASK [a\ufffdb\ufffdc\u240bd\u240ce\u241cf\ufffdg\u240dh] ****"
    )
    expect(page.locator("#L3 .txt")).to_have_text("ok: [web1]\u240dfatal")
    expect(page.locator("#L3 .fg32")).to_have_count(1)

    reopen(page, f"{live_server.url}/runs/{run.pk}/#L2")
    expect(page.locator(".line.target")).to_have_count(1)
    expect(page.locator("#L2")).to_have_class(re.compile(r"\btarget\b"))
    page.get_by_label("Search the log").fill("\ufffdg")
    expect(page.locator("#log-count")).to_have_text("1 match")
    expect(page.locator("#L2 mark.hit")).to_have_count(1)
