"""An auditor filters the audit log, opens a run from it and exports CSV (Chromium)."""

import csv
import re

import pytest
from playwright.sync_api import expect

from apps.runs import services
from apps.runs.constants import RunStatus
from tests.browser.helpers import deploy, sign_in
from tests.insights.helpers import History

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_auditor_finds_a_deploy_opens_its_run_and_exports_csv(page, live_server, demo):
    History(demo).shipped("test", "4.5.6")  # QA takes only what test verified
    run = deploy(demo, environment="qa", version="4.5.6")
    services.run_end(
        run=run, status=RunStatus.SUCCESSFUL, rc=0, host_summary={"localhost": {"ok": 5}}
    )

    sign_in(page, live_server.url, "auditor", "pushbutton-auditor")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit").click()
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()

    filters = page.get_by_role("form", name="Filter the audit log")
    filters.get_by_label("Verb").select_option("run.requested")
    filters.get_by_label("Environment").select_option("qa")
    filters.get_by_role("button", name="Filter").click()
    rows = page.locator("table.audit tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("dev")
    expect(rows.first).to_contain_text("hello-web")

    rows.first.get_by_role("link").click()
    expect(
        page.get_by_role("heading", name=re.compile(r"Audit row #\d+: run.requested"))
    ).to_be_visible()
    expect(page.locator("dd", has_text="matches its content")).to_be_visible()
    page.get_by_role("link", name=re.compile(f"Run #{run.pk}")).click()

    expect(page).to_have_url(f"{live_server.url}/runs/{run.pk}/")
    expect(page.locator(".params")).to_contain_text("4.5.6")
    expect(page.locator("code.hash").first).to_have_text(run.content_hash)

    page.go_back()
    page.go_back()
    with page.expect_download() as download:
        page.get_by_role("link", name="CSV").click()
    with open(download.value.path(), newline="") as exported:
        lines = list(csv.DictReader(exported))
    assert [(r["verb"], r["environment"], r["object_id"]) for r in lines] == [
        ("run.requested", "qa", str(run.pk))
    ]
    assert '"version":"4.5.6"' in lines[0]["details"]
