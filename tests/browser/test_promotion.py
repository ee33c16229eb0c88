"""A developer ships hello-web from test to production with the Promote button, is
stopped when skipping QA, and rolls production back in one click (Chromium, a real
worker, the demo's real playbooks)."""

import re

import pytest
from playwright.sync_api import expect

from apps.runs.models import Run
from tests.browser.helpers import sign_in
from tests.insights.helpers import History

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

RUN_URL = re.compile(r"/runs/(\d+)/$")


def _wait_successful(page):
    expect(page).to_have_url(RUN_URL)
    expect(page.locator("#run-status [data-status]")).to_have_attribute(
        "data-status", "successful", timeout=90_000
    )


def _wait_verified(page):
    verification = page.locator("#follow-ups")
    expect(verification).to_contain_text("Smoke test", timeout=60_000)
    expect(verification.locator("[data-status]")).to_have_attribute(
        "data-status", "successful", timeout=60_000
    )


def _served(demo, env) -> str:
    return (demo.targets / env / "current" / "VERSION").read_text().strip()


def _matrix_cell(page, base_url, env):
    page.goto(f"{base_url}/what-runs-where/")
    return page.locator(f'tr[data-service="hello-web"] td[data-environment="{env}"]')


def test_ship_from_test_to_production_with_promote_then_roll_back(
    page, live_server, celery_worker, demo
):
    # What ran before: 0.9.0 went through every environment.
    history = History(demo)
    for env in ("test", "qa", "production"):
        history.shipped(env, "0.9.0")
    base = live_server.url
    sign_in(page, base, "dev", "pushbutton-dev")
    page.get_by_role("link", name="hello-web", exact=True).first.click()
    expect(page.get_by_role("heading", name="hello-web", level=1)).to_be_visible()

    # Deploy 1.0.0 to test; it is verified by itself (the box is ticked by default).
    page.locator("#env-test").get_by_role("link", name="Deploy a version").click()
    page.get_by_label("Version").fill("1.0.0")
    expect(page.get_by_label(re.compile("Verify after the deploy"))).to_be_checked()
    page.get_by_role("button", name="Deploy hello-web on Test").click()
    _wait_successful(page)
    _wait_verified(page)

    # Skipping QA is refused, with the reason and a link to what is missing.
    page.goto(f"{base}/services/hello-web/deploy/production/")
    page.get_by_label("Version").fill("1.0.0")
    page.get_by_role("button", name=re.compile("Deploy hello-web on Production")).click()
    refusal = page.get_by_role("alert")
    expect(refusal).to_contain_text(
        "hello-web 1.0.0 has not been verified on QA, and Production accepts only versions "
        "verified there first"
    )
    refusal.get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"/services/hello-web/#env-qa$"))

    # Promote to QA, then to production, each with its Promote button.
    for env, name in (("qa", "QA"), ("production", "Production")):
        page.goto(f"{base}/services/hello-web/")
        page.locator(f"#env-{env}").get_by_role("link", name=re.compile("^Promote 1.0.0")).click()
        heading = page.get_by_role("heading", level=1)
        expect(heading).to_have_text(
            f"Promote hello-web 1.0.0 from {'Test' if env == 'qa' else 'QA'} to {name}"
        )
        expect(page.locator(".replaces")).to_contain_text("0.9.0")
        page.get_by_role("button", name=f"Promote 1.0.0 to {name}").click()
        _wait_successful(page)
        _wait_verified(page)
        assert _served(demo, env) == "1.0.0"

    expect(_matrix_cell(page, base, "production").locator(".version")).to_have_text("1.0.0")

    # Roll production back in one click (plus the reason it asks for).
    page.goto(f"{base}/services/hello-web/")
    page.locator("#env-production").get_by_role("link", name="Roll back…").click()
    expect(page.get_by_role("radio", name=re.compile("0.9.0"))).to_be_checked()
    page.get_by_label("Why roll back?").fill("1.0.0 answers slowly")
    page.get_by_role("button", name="Roll back Production").click()
    _wait_successful(page)
    expect(page.locator(".rollback-of")).to_contain_text("1.0.0 answers slowly")
    assert _served(demo, "production") == "0.9.0"
    rollback = Run.objects.get(pk=int(RUN_URL.search(page.url).group(1)))
    assert rollback.rollback_of.version == "1.0.0"

    cell = _matrix_cell(page, base, "production")
    expect(cell.locator(".version")).to_have_text("0.9.0")
    expect(cell).not_to_contain_text("not verified")
