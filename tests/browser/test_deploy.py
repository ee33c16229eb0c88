"""A developer deploys hello-web from the browser and watches the run live (Chromium)."""

import re

import pytest
from playwright.sync_api import expect

from apps.runs.models import Run
from tests.browser.helpers import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_dev_deploys_hello_web_to_test_and_watches_the_log_live(
    page, live_server, celery_worker, demo
):
    sign_in(page, live_server.url, "dev", "pushbutton-dev")

    row = page.locator("#service-hello-web tr[data-environment=test]")
    expect(row.locator(".version")).to_contain_text("none yet")
    row.get_by_role("link", name="Deploy").click()

    page.get_by_label("Version").fill("1.0")
    page.get_by_role("button", name="Deploy hello-web on Test").click()
    expect(page.locator("#version-error")).to_contain_text(r"Must match the pattern")

    page.get_by_label("Version").fill("1.0.0")
    page.get_by_role("button", name="Deploy hello-web on Test").click()
    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))

    log = page.locator("#log")
    # Lines arrive while the run goes on, without reloading the page.
    expect(log).to_contain_text("TASK [Create the release directory]", timeout=60_000)
    status = page.locator("#run-status [data-status]")
    expect(status).to_have_attribute("data-status", "successful", timeout=90_000)
    expect(log).to_contain_text("PLAY RECAP")
    # The page's facts and buttons follow the end too: no Cancel left, and when it finished.
    expect(page.locator("#run-actions").get_by_role("button", name="Cancel")).to_have_count(0)
    expect(page.locator("#run-facts")).to_contain_text(re.compile(r"Finished\s*(just now|\d)"))
    # Re-deploy once its verification (which holds the deploy lock meanwhile) ended too.
    expect(page.get_by_role("link", name="Re-deploy 1.0.0")).to_be_visible(timeout=90_000)
    expect(page.locator("#run-facts .summary")).to_contain_text("localhost")

    # Each line is shown once: the live updates never re-send what the page has.
    live = log.locator(".line").all_inner_texts()
    numbers = [int(line.split("\n")[0].split()[0]) for line in live if line.strip()]
    assert numbers == sorted(set(numbers)), "a line was shown twice or out of order"
    # ...and the live page shows exactly what a reload shows.
    page.reload()
    assert log.locator(".line").all_inner_texts() == live
    assert Run.objects.get(action_slug="deploy").status == "successful"

    page.get_by_role("link", name="Catalog").click()
    expect(page.locator("#service-hello-web tr[data-environment=test] .version")).to_contain_text(
        "1.0.0"
    )
    assert (demo.targets / "test" / "current" / "VERSION").read_text() == "1.0.0\n"
