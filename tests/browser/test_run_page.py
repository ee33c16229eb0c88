"""What a person sees on a run's page and its form (Chromium): a dry run's live log to its
last line; where a failed run stopped, with a jump to the error; durations ticking; the
log on the first screen of a laptop and a phone; no button the portal would refuse; the
version field focused; a dry run's form saying it starts at once; verification on by
default for a deploy and a rollback alike (issue #14, items 1, 3, 5, 6, 7, 9 and 13)."""

import re

import pytest
from django.utils import timezone
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
