"""Finding a service in a long catalog (Chromium): the search narrows the list as one
types, without reloading the page, and the address keeps the search."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import sign_in
from tests.factories import ServiceFactory

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.mark.browser
def test_the_catalog_narrows_as_one_types_and_keeps_the_search_in_its_address(
    page, live_server, demo
):
    for slug in ("billing", "checkout", "search-api"):
        ServiceFactory(slug=slug, name=slug, team=demo.service.team)
    sign_in(page, live_server.url, "dev", "pushbutton-dev")
    sections = page.locator("#catalog-results section.service")
    expect(sections).to_have_count(4)
    # Web, dev's team, comes first: its name is the first group's heading.
    expect(page.locator("#catalog-results section.team-group h2").first).to_contain_text("Web")

    page.get_by_role("search", name="Find services").get_by_label("Search").fill("bill")
    expect(sections).to_have_count(1)
    expect(sections.first).to_have_id("service-billing")
    expect(page).to_have_url(re.compile(r"/\?q=bill"))
    expect(page.get_by_role("heading", name="Catalog")).to_be_visible()  # the same page

    page.get_by_role("search", name="Find services").get_by_label("Search").fill("nothing")
    expect(page.get_by_text("No services match these filters.")).to_be_visible()
