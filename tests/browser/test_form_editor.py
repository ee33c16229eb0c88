"""Ops edit an action's form in the admin and watch the preview follow (Chromium, htmx)."""

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_preview_follows_the_json_as_ops_type(page, live_server, demo):
    sign_in(page, live_server.url, "ops", "pushbutton-ops")
    page.goto(f"{live_server.url}/admin/catalog/action/{demo.deploy.pk}/change/")
    preview = page.locator("#form-preview")
    # The action's own form, as developers see it, once the page has loaded.
    expect(preview.get_by_label("Version")).to_be_visible()

    editor = page.locator("textarea[name=form]")
    editor.fill(
        '[\n  {"name": "region", "type": "choice",\n   "required": true\n   "choices": ["eu"]}\n]'
    )
    expect(preview).to_contain_text("line 4, column 4: Expecting ',' delimiter")

    editor.fill('[{"name": "region", "type": "choice", "required": true, "choices": ["eu", "us"]}]')
    region = preview.get_by_label("Region")
    expect(region).to_be_visible()
    expect(region.locator("option:checked")).to_have_text("Choose…")
