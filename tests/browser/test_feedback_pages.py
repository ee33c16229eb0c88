"""In Chromium: reporting a problem on a deploy and seeing it on the service page, the
insights page with its chart, and the notification pages; axe-core clean on each."""

import pytest
from playwright.sync_api import expect

from apps.accounts.models import Membership, Team
from apps.incidents.models import Incident
from tests.browser.a11y import assert_accessible
from tests.browser.helpers import sign_in
from tests.insights.helpers import History

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_problem_reported_on_a_deploy_shows_on_its_service_page(page, live_server, demo):
    deploy = History(demo).deploy("test", "2.1.0")
    sign_in(page, live_server.url, "dev", "pushbutton-dev")

    page.goto(f"{live_server.url}/runs/{deploy.pk}/")
    page.get_by_text("Report a problem with this deploy").click()
    page.get_by_label("What is wrong?").fill("The header is broken")
    page.get_by_role("button", name="Open an incident").click()

    expect(page.get_by_text("Incident opened.")).to_be_visible()
    assert_accessible(page, what="a run page with an incident")
    assert Incident.objects.get().run == deploy
    page.goto(f"{live_server.url}/services/hello-web/")
    expect(page.get_by_role("heading", name="Open incidents")).to_be_visible()
    assert_accessible(page, what="a service page with an open incident")
    page.get_by_label("How was it resolved?").fill("Rolled the CDN config back")
    page.get_by_role("button", name="Resolve").click()
    expect(page.get_by_text(f"Incident #{Incident.objects.get().pk} resolved.")).to_be_visible()


def test_the_insights_page_draws_its_chart_and_reads_well(page, live_server, demo):
    history = History(demo)
    history.shipped("production", "1.0.0")
    sign_in(page, live_server.url, "dev", "pushbutton-dev")

    page.goto(f"{live_server.url}/insights/?days=90")

    expect(page.get_by_role("row", name="Deployment frequency")).to_be_visible()
    page.wait_for_function("() => Chart.getChart('dora-weeks') !== undefined")
    assert_accessible(page, what="the insights page")


def test_the_notification_pages_read_well(page, live_server, demo):
    team = Team.objects.filter(memberships__user=demo.dev).first() or Team.objects.create(
        slug="web", name="Web"
    )
    Membership.objects.get_or_create(team=team, user=demo.dev)
    sign_in(page, live_server.url, "dev", "pushbutton-dev")

    page.goto(f"{live_server.url}/notifications/")
    assert_accessible(page, what="the subscription page")
    page.goto(f"{live_server.url}/teams/{team.slug}/notifications/")
    page.get_by_role("button", name="Add").click()
    expect(page.get_by_text("This field is required.").first).to_be_visible()
    assert_accessible(page, what="a team's notifications, with errors")
