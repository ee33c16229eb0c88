"""What a person sees (issue 14) in Chromium: Promote never offers what was rolled back;
rollbacks and promotions named as such; the runs list's duration, commit and action
filter; the audit table's filters, a bad date and the chain's verification; an action's
description edit in the audit log; the service page and the catalog at phone width; the
navigation's section. Axe stays clean on every page visited."""

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from tests.browser.a11y import assert_accessible
from tests.browser.helpers import queue_idle, sign_in
from tests.insights.helpers import History

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def rolled_back(demo):
    """2.0.0 went through test and QA; 2.1.0 was verified on test, then test was rolled
    back to 2.0.0 ("2.1.0 breaks the header")."""
    queue_idle(*demo.envs.values())  # what these tests launch stays queued
    history = History(demo)
    history.shipped("test", "2.0.0")
    history.shipped("qa", "2.0.0")
    broken = history.shipped("test", "2.1.0")
    back = history.deploy(
        "test", "2.0.0", rollback_of=broken, reason="2.1.0 breaks the header",
        source_commit=COMMIT,
    )  # fmt: skip
    back.finished_at = back.started_at + timedelta(minutes=4, seconds=12)
    back.save()
    history.clock = back.finished_at  # what follows comes after it
    return {"history": history, "broken": broken, "back": back}


def test_promote_never_offers_a_version_rolled_back_and_the_rule_refuses_it(
    page, live_server, demo, rolled_back
):
    base = live_server.url
    sign_in(page, base, "dev", "pushbutton-dev")

    page.goto(f"{base}/services/hello-web/")
    qa = page.locator("#env-qa")
    expect(qa.get_by_role("link", name=re.compile("^Promote"))).to_have_count(0)
    assert_accessible(page, what="the service page after a rollback")
    page.goto(f"{base}/services/hello-web/environments/qa/promote/")
    expect(page.locator(".nothing-to-promote")).to_contain_text(
        "hello-web 2.0.0 has not been verified on Test"
    )
    expect(page.get_by_role("button", name=re.compile("^Promote"))).to_have_count(0)

    # Typed in by hand, 2.1.0 is refused with the reason.
    page.goto(f"{base}/services/hello-web/deploy/qa/")
    page.get_by_label("Version").fill("2.1.0")
    page.get_by_role("button", name=re.compile("Deploy hello-web on QA")).click()
    expect(page.get_by_role("alert")).to_contain_text(
        "hello-web 2.1.0 was rolled back on Test since its verification"
    )
    assert_accessible(page, what="the refused deploy")

    # Once what the rollback put back is verified, the catalog offers it as Promote.
    rolled_back["history"].verify("test", "2.0.0")
    rolled_back["history"].deploy("qa", "1.9.0")  # QA runs something else now
    page.goto(f"{base}/")
    row = page.locator('#service-hello-web tr[data-environment="qa"]')
    promote = row.get_by_role("link", name="Promote 2.0.0 from Test")
    expect(promote).to_be_visible()
    deploy = row.get_by_role("link", name="Deploy", exact=True)
    expect(deploy).to_be_visible()
    assert "primary" not in (deploy.get_attribute("class") or "")
    assert "kind-deploy" not in (deploy.get_attribute("class") or "")
    assert_accessible(page, what="the catalog")


def test_rollbacks_are_named_as_such_everywhere(page, live_server, demo, rolled_back):
    base, back = live_server.url, rolled_back["back"]
    sign_in(page, base, "dev", "pushbutton-dev")

    page.goto(f"{base}/runs/{back.pk}/")
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Run #{back.pk}: Roll back hello-web on Test to 2.0.0"
    )
    page.goto(f"{base}/runs/")
    row = page.locator(f'tr[data-run="{back.pk}"]')
    expect(row.locator(".badge.rollback")).to_have_text("Rollback")
    expect(row).to_contain_text(f"of #{rolled_back['broken'].pk} (2.1.0)")
    page.goto(f"{base}/what-runs-where/")
    cell = page.locator('tr[data-service="hello-web"] td[data-environment="test"]')
    expect(cell.locator(".badge.rollback")).to_have_count(2)  # what runs, and the last run
    assert_accessible(page, what="what runs where")
    page.goto(f"{base}/services/hello-web/")
    expect(page.locator("#env-test table.history tr.is-rollback .badge.rollback")).to_be_visible()


def test_the_runs_list_shows_duration_commit_and_filters_by_action(
    page, live_server, demo, rolled_back
):
    base, back = live_server.url, rolled_back["back"]
    sign_in(page, base, "dev", "pushbutton-dev")
    page.goto(f"{base}/runs/")

    row = page.locator(f'tr[data-run="{back.pk}"]')
    expect(row.locator("td.duration")).to_have_text("4 min 12 s")
    expect(row.locator("td.commit code")).to_have_text(COMMIT[:10])
    filters = page.get_by_role("form", name="Filter the runs")
    filters.get_by_label("Action").select_option(label="Smoke test")
    filters.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"action=smoke-test"))
    actions = page.locator("table.runs tbody td[data-label='Action']")
    expect(actions).to_have_count(3)  # the three verifications, no deploy
    for text in actions.all_inner_texts():
        assert text.strip() == "Smoke test"
    assert_accessible(page, what="the runs list filtered by action")


def test_the_audit_table_reads_well_and_a_bad_date_is_said_beside_it(
    page, live_server, demo, rolled_back
):
    base = live_server.url
    sign_in(page, base, "auditor", "pushbutton-auditor")
    page.goto(f"{base}/audit/")

    # The last verification, not a command to run.
    expect(page.locator(".chain")).not_to_contain_text("manage.py")
    page.get_by_role("button", name="Verify the chain now").click()
    expect(page.locator("[data-chain=intact]")).to_contain_text("Chain intact")

    filters = page.get_by_role("form", name="Filter the audit log")
    filters.get_by_label("Verb").select_option("auth.*")
    expect(filters.get_by_label("Service").locator("option").first).to_have_text("any")
    expect(filters.get_by_label("Since")).to_have_attribute("type", "date")
    filters.get_by_role("button", name="Filter").click()
    rows = page.locator("table.audit tbody tr")
    expect(rows.first).to_be_visible()
    when = rows.first.locator("td[data-label=When] time").inner_text()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+", when), when  # to the second
    wrap = rows.first.locator("td[data-label=Object]").evaluate(
        "td => getComputedStyle(td).overflowWrap + ' ' + getComputedStyle(td).wordBreak"
    )
    assert "anywhere" not in wrap and "break-all" not in wrap
    assert_accessible(page, what="the audit log")

    # A bad date: a message beside the field; the other filters still show their rows.
    page.goto(f"{base}/audit/?verb=auth.login&since=2026-02-31")
    expect(page.locator("#since-error")).to_be_visible()
    expect(page.locator("table.audit tbody tr[data-verb='auth.login']").first).to_be_visible()
    assert_accessible(page, what="the audit log with a bad date")


def test_an_action_description_edit_is_in_the_audit_log(page, live_server, demo):
    base = live_server.url
    sign_in(page, base, "ops", "pushbutton-ops")
    page.goto(f"{base}/admin/catalog/action/{demo.deploy.pk}/change/")
    page.get_by_label("Description").fill("Ships the build; takes about a minute.")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text("changed successfully")

    page.goto(f"{base}/audit/?verb=action.update")
    row = page.locator("table.audit tbody tr").first
    expect(row).to_contain_text("hello-web")
    row.get_by_role("link").click()
    expect(page.locator("table.changes")).to_contain_text("Ships the build; takes about a minute.")


def test_phone_width_labels_scrolling_histories_rows_and_navigation(
    page, live_server, demo, rolled_back
):
    base = live_server.url
    sign_in(page, base, "dev", "pushbutton-dev")
    page.set_viewport_size({"width": 390, "height": 844})

    page.goto(f"{base}/services/hello-web/")
    labels = page.locator('table.service-envs tr[data-environment="test"] td').evaluate_all(
        "tds => tds.map(td => getComputedStyle(td, '::before').content)"
    )
    assert labels == [
        '"Version now"', '"Playbook"', '"Deployed by"', '"When"', '"Last run"'
    ], labels  # fmt: skip
    box = page.locator("#env-test .table-scroll")
    width = box.evaluate("el => [el.scrollWidth, el.clientWidth]")
    assert width[0] > width[1], width  # the history scrolls within its box...
    # ...and its last column, beyond the box's edge, comes into it when scrolled.
    status = page.locator("#env-test table.history tbody tr").first.locator("td").nth(4)
    edge = "(el, box) => [el.getBoundingClientRect().right, box.getBoundingClientRect().right]"
    right, box_right = status.evaluate(edge, box.element_handle())
    assert right > box_right
    box.evaluate("el => el.scrollLeft = el.scrollWidth")
    right, box_right = status.evaluate(edge, box.element_handle())
    assert right <= box_right + 1
    expect(
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Catalog")
    ).to_have_attribute("aria-current", "true")
    assert_accessible(page, what="the service page at phone width")

    # The catalog's row borders line up: each row's cells span the same width.
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{base}/")
    edges = page.locator("#service-hello-web table.envs tbody tr").evaluate_all(
        "trs => trs.map(tr => [...tr.children].map("
        "c => Math.round(c.getBoundingClientRect().bottom)))"
    )
    for cells in edges:
        assert len(set(cells)) == 1, edges

    # A page reached from the catalog (a deploy form) is in the Catalog section.
    page.goto(f"{base}/services/hello-web/deploy/test/")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Catalog")).to_have_attribute("aria-current", "true")
    expect(nav.get_by_role("link", name="Runs", exact=True)).not_to_have_attribute(
        "aria-current", re.compile(".")
    )
