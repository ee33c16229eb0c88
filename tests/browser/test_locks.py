"""A developer locks hello-web on Test from the page, everyone sees the banner, a deploy
is refused with the reason, and the Unlock button lifts it (Chromium)."""

import re

import pytest
from playwright.sync_api import expect

from apps.audit.models import AuditEvent
from apps.environments.models import EnvironmentLock
from apps.runs.models import Run
from tests.browser.helpers import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_dev_locks_test_sees_the_banner_is_refused_a_deploy_and_unlocks(page, live_server, demo):
    sign_in(page, live_server.url, "dev", "pushbutton-dev")
    expect(page.locator("#environment-blocks")).to_have_count(0)

    page.goto(f"{live_server.url}/environments/test/lock/?service=hello-web")
    expect(page.get_by_role("heading", name="Lock Test")).to_be_visible()
    expect(page.get_by_label("What")).to_have_value("hello-web")
    page.get_by_role("button", name="Lock").click()
    expect(page.locator("#reason-error")).to_contain_text("Say why")
    page.get_by_label("For").select_option(label="2 hours")
    page.get_by_label("Why").fill("Load test against the test database")
    page.get_by_role("button", name="Lock").click()

    expect(page.locator(".messages")).to_contain_text("Locked hello-web on Test until")
    banner = page.locator("#environment-blocks")
    expect(banner).to_contain_text("hello-web is locked on Test by dev until")
    expect(banner).to_contain_text("Load test against the test database")
    lock = EnvironmentLock.objects.get()
    assert lock.created_by == demo.dev and lock.service == demo.service

    # The banner follows to every page, and the deploy is refused with the reason.
    page.locator("#service-hello-web tr[data-environment=test]").get_by_role(
        "link", name="Deploy"
    ).click()
    expect(page.locator("#environment-blocks")).to_contain_text("hello-web is locked on Test")
    page.get_by_label("Version").fill("1.0.0")
    page.get_by_role("button", name="Deploy hello-web on Test").click()
    refusal = page.locator("main").get_by_role("alert")
    expect(refusal).to_contain_text("hello-web is locked on Test by dev until")
    expect(refusal).to_contain_text("Load test against the test database")
    assert not Run.objects.exists()
    assert AuditEvent.objects.filter(verb="run.refused", actor_name="dev").exists()

    # Unlock from the banner: the same page comes back, without the lock.
    page.get_by_role("button", name="Unlock hello-web on Test").click()
    expect(page.locator(".messages")).to_contain_text("Unlocked hello-web on Test.")
    expect(page.locator("#environment-blocks")).to_have_count(0)
    expect(page).to_have_url(re.compile(r"/services/hello-web/deploy/test/$"))
    lock.refresh_from_db()
    assert lock.released_by_name == "dev"
    assert AuditEvent.objects.filter(verb="environment.unlocked", actor_name="dev").exists()
