"""Issue #7, expectations 1-5, in Chromium: the service page, Promote's confirmation, the
Roll back dialog, re-deploy vs roll back wording, buttons and the production
confirmation. Each page visited is also checked with axe-core."""

import re

import pytest
from playwright.sync_api import expect

from apps.audit.models import AuditEvent
from apps.runs.models import Run
from tests.browser.a11y import assert_accessible
from tests.browser.helpers import queue_idle, sign_in
from tests.insights.helpers import History

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SERVICE = "/services/hello-web/"


@pytest.fixture
def shipped(demo):
    """0.9.0 then 1.0.0 went through every environment; production then got 1.0.1 some
    other way, never verified on QA; 1.1.0 is verified on test only."""
    queue_idle(*demo.envs.values())  # what these tests launch stays queued
    history = History(demo)
    for version in ("0.9.0", "1.0.0"):
        for env in ("test", "qa", "production"):
            history.shipped(env, version)
    history.deploy("production", "1.0.1")
    history.shipped("test", "1.1.0")
    return history


def _as(page, base, who):
    sign_in(page, base, who, f"pushbutton-{who}")
    page.goto(f"{base}{SERVICE}")


def test_1_one_row_per_environment_with_version_commit_who_when_status_and_drift(
    page, live_server, demo, shipped
):
    _as(page, live_server.url, "dev")

    rows = page.locator("table.service-envs tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.locator("th")).to_have_text(["Test", "QA", "Production"])
    commit = demo.deploy.playbook_version.commit[:10]
    for env, version in (("test", "1.1.0"), ("qa", "1.0.0"), ("production", "1.0.1")):
        row = page.locator(f'table.service-envs tr[data-environment="{env}"]')
        expect(row.locator("td.version a")).to_have_text(version)
        expect(row).to_contain_text(commit)
        expect(row).to_contain_text("dev")
        expect(row.locator("time")).to_contain_text(re.compile(r"ago|just now"))
        expect(row.locator(".status")).to_have_text("Successful")
    drift = page.locator('table.service-envs tr[data-environment="production"]')
    expect(drift).to_have_class(re.compile(r"\bdrift\b"))
    expect(drift).to_contain_text("not verified on QA")
    expect(page.locator('table.service-envs tr[data-environment="qa"]')).not_to_contain_text(
        "not verified"
    )
    assert_accessible(page, what="the service page")


def test_2_promote_confirms_source_target_version_replaced_and_parameters(
    page, live_server, demo, shipped
):
    _as(page, live_server.url, "dev")

    page.locator("#env-qa").get_by_role("link", name="Promote 1.1.0 from Test").click()

    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Promote hello-web 1.1.0 from Test to QA"
    )
    facts = page.locator(".confirm-facts")
    expect(facts).to_contain_text("Test → QA")
    expect(facts.locator(".new-version")).to_have_text("1.1.0")
    expect(facts.locator(".replaces")).to_contain_text("1.0.0")
    expect(page.locator("table.params")).to_contain_text("version")
    expect(page.locator("table.params")).to_contain_text("1.1.0")
    assert not Run.objects.filter(environment=demo.envs["qa"], version="1.1.0").exists()
    assert_accessible(page, what="the promote confirmation")


def test_3_roll_back_lists_versions_says_what_changes_and_keeps_the_reason(
    page, live_server, demo, shipped
):
    _as(page, live_server.url, "dev")
    expect(page.locator("#env-qa").get_by_role("link", name="Roll back…")).to_be_visible()
    page.locator("#env-production").get_by_role("link", name="Roll back…").click()

    dialog = page.get_by_role("dialog", name="Roll back hello-web on Production")
    expect(dialog.locator(".current-version")).to_contain_text("Running now: 1.0.1")
    expect(dialog.get_by_role("radio")).to_have_count(2)  # 1.0.0 and 0.9.0, newest first
    expect(dialog.get_by_role("radio", name=re.compile(r"^1\.0\.0"))).to_be_checked()
    expect(dialog.locator(".will-change")).to_contain_text("goes from 1.0.1 back to")
    assert_accessible(page, what="the roll back dialog")

    dialog.get_by_role("radio", name=re.compile(r"^0\.9\.0")).check()
    dialog.get_by_label("Why roll back?").fill("1.0.1 was a hotfix gone wrong")
    dialog.get_by_role("button", name="Roll back Production").click()

    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    expect(page.locator(".rollback-of")).to_contain_text("1.0.1 was a hotfix gone wrong")
    run = Run.objects.get(rollback_of__isnull=False)
    assert (run.version, run.rollback_of.version) == ("0.9.0", "1.0.1")
    record = AuditEvent.objects.get(verb="run.requested", object_id=str(run.pk))
    assert record.details["reason"] == "1.0.1 was a hotfix gone wrong"

    # The history calls it a rollback; where nothing earlier ran, no Roll back is offered.
    shipped.deploy("test", "2.0.0", rollback_of=run)  # (a finished one, for the history)
    page.goto(f"{live_server.url}{SERVICE}")
    expect(page.locator("#env-test tr.is-rollback").first).to_contain_text("Rollback of")
    # QA's history reduced to the one version it runs: rolling back would change nothing.
    Run.objects.filter(environment=demo.envs["qa"]).exclude(version="1.0.0").delete()
    page.reload()
    expect(page.locator("#env-qa").get_by_role("link", name=re.compile("Roll back"))).to_have_count(
        0
    )


def test_4_re_deploy_and_roll_back_are_worded_differently(page, live_server, demo, shipped):
    deploy = Run.objects.get(environment=demo.envs["test"], version="1.1.0", action_slug="deploy")
    _as(page, live_server.url, "dev")

    page.goto(f"{live_server.url}/runs/{deploy.pk}/")
    expect(page.get_by_role("link", name="Re-deploy 1.1.0")).to_be_visible()
    expect(page.get_by_role("link", name=re.compile("Roll back"))).to_have_count(0)

    page.goto(f"{live_server.url}{SERVICE}")
    buttons = page.locator(".env-card .buttons a")
    links = [(a.inner_text(), a.get_attribute("href")) for a in buttons.all()]
    rollbacks = [href for text, href in links if text.startswith("Roll back")]
    assert rollbacks, links
    # Only rollbacks say "roll back", and no rollback is worded as a deploy.
    assert all(href.endswith("/rollback/") for text, href in links if "oll back" in text)
    assert all("eploy" not in text for text, href in links if href.endswith("/rollback/"))


def test_5_hidden_buttons_and_the_production_confirmation(page, live_server, demo, shipped):
    # tester may run hello-web on test and QA, and only look at production.
    _as(page, live_server.url, "tester")
    production = page.locator("#env-production")
    expect(production).to_contain_text("1.0.1")
    expect(production.locator(".buttons a")).to_have_count(0)
    expect(page.locator("#env-qa").get_by_role("link", name="Deploy a version")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()

    # A production run goes through a confirmation page first.
    before = Run.objects.filter(environment=demo.envs["production"]).count()
    _as(page, live_server.url, "dev")
    page.locator("#env-production").get_by_role("link", name="Deploy a version").click()
    page.get_by_label("Version").fill("1.0.0")
    page.get_by_role("button", name=re.compile("Deploy hello-web on Production")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Confirm: Deploy hello-web on Production"
    )
    expect(page.locator(".new-version")).to_have_text("1.0.0")
    expect(page.locator(".replaces")).to_contain_text("1.0.1")
    assert Run.objects.filter(environment=demo.envs["production"]).count() == before
    assert_accessible(page, what="the production confirmation")
    page.get_by_role("button", name="Confirm: Deploy hello-web on Production").click()
    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))


def test_the_matrix_page_is_accessible_and_flags_drift(page, live_server, demo, shipped):
    _as(page, live_server.url, "dev")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="What runs where").click()

    cell = page.locator('tr[data-service="hello-web"] td[data-environment="production"]')
    expect(cell.locator(".version")).to_have_text("1.0.1")
    expect(cell).to_contain_text("not verified on QA")
    assert_accessible(page, what="what runs where")
