"""What a person sees on a run's page and its form (Chromium): a dry run's live log to its
last line; where a failed run stopped, with a jump to the error; durations ticking; the
log on the first screen of a laptop and a phone; no button the portal would refuse; the
version field focused; a dry run's form saying it starts at once; verification on by
default for a deploy and a rollback alike (issue #14, items 1, 3, 5, 6, 7, 9 and 13)."""

import re

import pytest
from playwright.sync_api import expect

from apps.runs import services
from apps.runs.constants import RunStatus
from apps.runs.models import Run
from tests.browser.a11y import assert_accessible
from tests.browser.helpers import LOG, add_log, deploy, finished_run, running_run, sign_in
from tests.runs.helpers import RED, RESET, Log, queue_held

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def dev_page(page, live_server, demo):
    sign_in(page, live_server.url, "dev", "pushbutton-dev")
    return page


# --- 1. a dry run's live page reaches its last line by itself ---------------------------------
@pytest.mark.worker
@pytest.mark.slow
def test_a_dry_runs_live_page_reaches_its_last_line_by_itself(
    dev_page, live_server, celery_worker, demo
):
    page = dev_page
    page.goto(f"{live_server.url}/services/hello-web/deploy/test/")
    page.get_by_label("Version").fill("1.0.0")
    page.get_by_label(re.compile("Dry run")).check()
    page.get_by_role("button", name=re.compile("Deploy hello-web on Test")).click()
    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    run = Run.objects.get()

    expect(page.locator("#run-status [data-status]")).to_have_attribute(
        "data-status", "successful", timeout=90_000
    )
    run.refresh_from_db()
    assert run.check_mode and run.line_count > 40
    # The live page got every line, the last one (the recap's) included, with no link
    # left to ask for more: it stopped following only because the run had ended.
    expect(page.locator(f"#L{run.line_count}")).to_be_attached(timeout=15_000)
    expect(page.locator("#log .line").last).to_have_id(f"L{run.line_count}")
    expect(page.locator("#log")).to_contain_text(re.compile(r"localhost\s+: ok=\d+"))
    expect(page.locator("#log-poller")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("Show later lines"))).to_have_count(0)
    numbers = [int(n) for n in page.locator("#log .ln").all_inner_texts()]
    assert numbers == list(range(1, run.line_count + 1))
    expect(page.locator("#log")).to_contain_text("PLAY RECAP")
    assert_accessible(page)


# --- 5. where a failed run stopped --------------------------------------------------------------
FATAL = (
    f"{RED}fatal: [web2]: FAILED! => {{{RESET}\r\n"
    f'{RED}    "changed": false,{RESET}\r\n'
    f'{RED}    "msg": "No space left on device"{RESET}\r\n'
    f"{RED}}}{RESET}"
)


def test_a_failed_run_says_at_the_top_what_failed_where_and_jumps_to_the_error(
    dev_page, live_server, demo
):
    page = dev_page
    run = deploy(demo)
    services.run_start(run_id=run.pk, worker="tests", pid=0)
    log = Log(run)
    log.add("playbook_on_play_start", "\r\nPLAY [Deploy hello-web] ****")
    log.add("playbook_on_task_start", "\r\nTASK [Check the version] ****", task="Check the version")
    log.add("runner_on_ok", "ok: [web1]", host="web1")
    log.add("playbook_on_task_start", "\r\nTASK [Install] ****", task="Install")
    log.add("runner_on_failed", FATAL, host="web2", task="Install", failed=True)
    log.lines(1500)  # web1 goes on: the error is far above the end of the log
    log.add("playbook_on_stats", "\r\nPLAY RECAP ****\r\nweb1 : ok=2\r\nweb2 : failed=1")
    services.run_end(run=run, status=RunStatus.FAILED, rc=2, host_summary={})

    page.goto(f"{live_server.url}/runs/{run.pk}/")
    failure = page.locator("#run-failure")
    expect(failure.get_by_role("heading")).to_have_text("Install failed on web2")
    expect(failure).to_contain_text('"msg": "No space left on device"')
    progress = page.locator("#run-progress")
    expect(progress).to_contain_text("Stopped at task 2 of 10")  # deploy.yml has ten
    expect(progress.locator("progress")).to_have_attribute("max", "10")
    red = page.evaluate("getComputedStyle(document.querySelector('.status-failed')).color")
    assert progress.locator("progress").evaluate("e => getComputedStyle(e).accentColor") == red
    assert_accessible(page)

    failure.get_by_role("link", name=re.compile("Jump to the error")).click()
    error = page.locator("#L8")  # the failed event's first line
    expect(error).to_contain_text("fatal: [web2]: FAILED!")
    expect(error).to_have_class(re.compile(r"\btarget\b"))
    expect(error).to_be_in_viewport()


# --- 6. durations tick, Started as it starts, an exit code ------------------------------------
def test_the_duration_ticks_while_the_run_goes_and_started_fills_in_as_it_starts(
    dev_page, live_server, demo
):
    page = dev_page
    with queue_held():
        run = deploy(demo)
    page.goto(f"{live_server.url}/runs/{run.pk}/")
    status, facts = page.locator("#run-status"), page.locator("#run-facts")
    expect(status).to_contain_text("Waiting for a worker")
    expect(facts).to_contain_text(re.compile(r"Started\s*—"))

    services.run_start(run_id=run.pk, worker="tests", pid=0)
    add_log(Run.objects.get(pk=run.pk), LOG[:4])
    # Without a reload: when it started, and a duration as people write it, ticking.
    expect(facts).not_to_contain_text(re.compile(r"Started\s*—"), timeout=10_000)
    duration = status.locator(".duration")
    expect(duration).to_have_text(re.compile(r"^\d\.\d s$"))
    first = duration.inner_text()
    expect(duration).not_to_have_text(first, timeout=5_000)
    expect(duration).to_have_text(re.compile(r"^\d+(\.\d)? s$"))

    run.refresh_from_db()
    services.run_end(run=run, status=RunStatus.FAILED, rc=2, host_summary={})
    expect(status.locator("[data-status]")).to_have_attribute("data-status", "failed")
    expect(status).to_contain_text("exit code 2")
    expect(status).not_to_contain_text("rc 2")
    ended = duration.inner_text()
    assert re.fullmatch(r"\d+(\.\d)? s", ended)
    page.wait_for_timeout(1500)  # it stopped ticking
    expect(duration).to_have_text(ended)
    assert_accessible(page)


# --- 7. the log is the main thing on the first screen ------------------------------------------
LAYOUT = """() => {
    const box = (s) => document.querySelector(s).getBoundingClientRect();
    return {log: box("#log"), head: box(".run-head"), details: box(".run-details"),
            lines: Array.from(document.querySelectorAll("#log .line")).filter(
                (l) => l.getBoundingClientRect().top >= 0
                    && l.getBoundingClientRect().bottom <= innerHeight
                    && l.getBoundingClientRect().bottom <= box("#log").bottom).length};
}"""


@pytest.mark.parametrize(
    ("viewport", "lines"),
    [({"width": 1280, "height": 800}, 12), ({"width": 390, "height": 844}, 5)],
    ids=["laptop", "phone"],
)
def test_the_log_starts_on_the_first_screen(dev_page, live_server, demo, viewport, lines):
    page = dev_page
    page.set_viewport_size(viewport)
    run = finished_run(demo)
    page.goto(f"{live_server.url}/runs/{run.pk}/")
    expect(page.locator("#L5")).to_be_visible()
    page.evaluate("window.scrollTo(0, 0)")

    layout = page.evaluate(LAYOUT)

    assert layout["lines"] >= lines, layout  # log lines readable without scrolling the page
    assert layout["log"]["top"] - layout["head"]["bottom"] < 100, layout  # no empty block
    if viewport["width"] >= 1280:  # the details beside the log, not above it
        assert layout["details"]["left"] >= layout["log"]["right"], layout
        assert layout["details"]["top"] < viewport["height"], layout
    assert_accessible(page)


# --- 9. no button the portal would refuse; the keyboard's order; the version focused -----------
def test_no_run_again_while_the_deploy_lock_is_held_and_cancel_comes_last(
    dev_page, live_server, demo
):
    page = dev_page
    done = finished_run(demo, version="1.0.0")
    going = running_run(demo, version="1.1.0")

    page.goto(f"{live_server.url}/runs/{done.pk}/")
    actions = page.locator("#run-actions")
    expect(actions.get_by_role("link", name=re.compile("Re-deploy"))).to_have_count(0)
    expect(actions).to_contain_text(f"Run again once run #{going.pk} ends")
    assert_accessible(page)

    page.goto(f"{live_server.url}/runs/{going.pk}/")
    expect(
        page.locator("#run-actions").get_by_role("link", name=re.compile("Re-deploy"))
    ).to_have_count(0)
    page.locator("main h1").click()  # the keyboard starts from the top of the run page
    first = None
    for _ in range(30):
        page.keyboard.press("Tab")
        first = page.evaluate(
            "() => { const e = document.activeElement;"
            " return e.matches('button, a.button') ? e.textContent.trim() : null; }"
        )
        if first:
            break
    assert first and first != "Cancel", first

    # A finished run with no lock held: offered again.
    services.run_end(run=going, status=RunStatus.SUCCESSFUL, rc=0, host_summary={})
    page.goto(f"{live_server.url}/runs/{done.pk}/")
    expect(page.get_by_role("link", name="Re-deploy 1.0.0")).to_be_visible()


def test_the_version_field_has_the_focus_when_a_form_opens(dev_page, live_server, demo):
    page = dev_page
    page.goto(f"{live_server.url}/services/hello-web/deploy/test/")
    expect(page.get_by_label("Version")).to_be_focused()
    page.keyboard.type("2.0.0")
    expect(page.get_by_label("Version")).to_have_value("2.0.0")


# --- 3. a dry run on an environment that confirms -----------------------------------------------
def test_the_production_form_says_plainly_that_a_dry_run_starts_at_once(
    dev_page, live_server, demo
):
    page = dev_page
    page.goto(f"{live_server.url}/services/hello-web/deploy/production/")
    note = page.locator("#confirm-note")
    expect(note).to_contain_text("the next page shows what will change before anything runs")
    expect(note).to_contain_text("A dry run changes nothing, so it starts at once")
    button = page.locator("main form button[type=submit]")
    expect(button).to_have_text("Deploy hello-web on Production…")
    assert_accessible(page)

    page.get_by_label("Version").fill("1.0.0")
    page.get_by_label(re.compile("Dry run")).check()
    expect(button).to_have_text("Dry run: Deploy hello-web on Production")
    with queue_held():
        button.click()
        expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    run = Run.objects.get()
    assert run.check_mode and run.environment.slug == "production"
    page.get_by_role("link", name="Catalog").click()
    page.goto(f"{live_server.url}/services/hello-web/deploy/production/")
    page.get_by_label(re.compile("Dry run")).check()
    page.get_by_label(re.compile("Dry run")).uncheck()
    expect(button).to_have_text("Deploy hello-web on Production…")


# --- 13. verification on by default, deploy and rollback alike ----------------------------------
def test_verification_is_on_by_default_for_a_deploy_and_a_rollback_alike(
    dev_page, live_server, demo
):
    page = dev_page
    page.goto(f"{live_server.url}/services/hello-web/deploy/test/")
    expect(page.get_by_label(re.compile("Verify after the deploy"))).to_be_checked()

    finished_run(demo, version="1.0.0")
    finished_run(demo, version="1.1.0")
    page.goto(f"{live_server.url}/services/hello-web/environments/test/rollback/")
    verify = page.get_by_label(re.compile("Verify after the rollback"))
    expect(verify).to_be_checked()
    expect(page.locator("main")).to_contain_text(
        "On by default for a deploy, a promotion and a rollback alike."
    )
    assert_accessible(page)
