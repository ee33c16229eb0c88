"""What each person is shown (Chromium): a developer only the buttons they may press,
an auditor none at all."""

import re

import pytest
from playwright.sync_api import expect

from apps.runs.constants import RunStatus
from tests.browser.helpers import sign_in
from tests.factories import RunFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_each_person_sees_only_the_buttons_they_may_press(page, live_server, demo):
    run = RunFactory(
        action=demo.deploy, environment=demo.envs["test"], requested_by=demo.dev,
        parameters={"version": "1.0.0"}, version="1.0.0", status=RunStatus.SUCCESSFUL,
    )  # fmt: skip

    # tester's team may run hello-web on test and QA, and only look at production.
    sign_in(page, live_server.url, "tester", "pushbutton-tester")
    service = page.locator("#service-hello-web")
    for env in ("test", "qa"):
        buttons = service.locator(f"tr[data-environment={env}] td.actions a")
        expect(buttons).to_have_text(["Deploy", "Smoke test"])  # Roll back: the service page
    production = service.locator("tr[data-environment=production]")
    expect(production).to_be_visible()
    expect(production.locator("td.actions a")).to_have_count(0)
    # Someone else's run: no Cancel; the same action on test: Re-deploy.
    page.goto(f"{live_server.url}/runs/{run.pk}/")
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    expect(page.get_by_role("link", name="Re-deploy 1.0.0")).to_be_visible()
    # Typing the address of a button that is not drawn: refused, and told why.
    page.goto(f"{live_server.url}/services/hello-web/deploy/production/")
    expect(page.locator("#refusal")).to_contain_text(
        "No grant of your teams lets you run hello-web on Production"
    )
    page.locator("form.whoami").get_by_role("button", name="Sign out").click()

    sign_in(page, live_server.url, "auditor", "pushbutton-auditor")
    expect(page.locator("#service-hello-web tr")).to_have_count(4)  # header and 3 environments
    # No button that does something: only the search form's Filter and Clear.
    expect(page.locator("main form[role=search] .button")).to_have_count(2)
    outside_search = ":not(form[role=search] *)"
    expect(
        page.locator(f"main a.button{outside_search}, main button{outside_search}")
    ).to_have_count(0)
    page.goto(f"{live_server.url}/runs/{run.pk}/")
    expect(page.get_by_role("heading", name=re.compile(r"Run #\d+"))).to_be_visible()
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    expect(page.get_by_role("link", name=re.compile("Re-deploy|Run again"))).to_have_count(0)
