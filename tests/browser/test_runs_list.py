"""Finding runs, and what a run page offers (Chromium): every run has a permanent URL; the
runs list filters by service, environment, status, user and days, and opens a run by its
number; Cancel asks first, in a dialog; Run again pre-fills the form; times are shown in
the reader's time zone."""

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.audit.models import AuditEvent
from apps.runs.constants import RunStatus
from apps.runs.models import Run
from tests.browser.a11y import assert_accessible
from tests.browser.helpers import deploy, finished_run, queue_idle, sign_in
from tests.clients import page_client
from tests.factories import ActionFactory, RunFactory, ServiceFactory

# Browser tests are marked one by one: the last one asks the server alone.
pytestmark = [pytest.mark.django_db(transaction=True)]

TOKYO = ZoneInfo("Asia/Tokyo")


def shown_ids(page) -> list[int]:
    return [int(n) for n in page.locator("table.runs tbody tr[data-run]").evaluate_all(
        "rows => rows.map(r => r.dataset.run)"
    )]  # fmt: skip


@pytest.mark.browser
@pytest.mark.browser_context_args(timezone_id="Asia/Tokyo")
def test_the_runs_list_filters_by_each_field_and_every_run_has_its_url(page, live_server, demo):
    billing = ServiceFactory(slug="billing", name="billing")
    bill = ActionFactory(service=billing, slug="deploy", label="Deploy")
    # 2026-03-01 20:00 UTC is already 2 March in Tokyo, where the reader is.
    evening = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)
    runs = {
        "web-test": RunFactory(action=demo.deploy, environment=demo.envs["test"],
                             requested_by=demo.dev, status=RunStatus.SUCCESSFUL,
                             version="1.0.0", created_at=evening - timedelta(days=20)),
        "web-qa": RunFactory(action=demo.deploy, environment=demo.envs["qa"],
                           requested_by=demo.tester, status=RunStatus.FAILED,
                           version="1.0.0", created_at=evening - timedelta(hours=12)),
        "billing-test": RunFactory(action=bill, environment=demo.envs["test"],
                                 requested_by=demo.dev, status=RunStatus.FAILED,
                                 created_at=evening),
        "billing-prod": RunFactory(action=bill, environment=demo.envs["production"],
                                 requested_by=demo.dev, status=RunStatus.CANCELED,
                                 created_at=evening + timedelta(days=3)),
    }  # fmt: skip
    ids = {name: run.pk for name, run in runs.items()}
    newest_first = sorted(ids.values(), reverse=True)

    sign_in(page, live_server.url, "dev", "pushbutton-dev")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Runs", exact=True).click()
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    expect(page.locator("table.runs tbody tr[data-run]")).to_have_count(4)
    assert shown_ids(page) == newest_first

    filters = page.get_by_role("form", name="Filter the runs")

    def apply(**values):
        page.goto(f"{live_server.url}/runs/")
        for label, value in values.items():
            field = filters.get_by_label(re.compile(f"^{label}", re.I))
            if field.evaluate("el => el.tagName") == "SELECT":
                field.select_option(value)
            else:
                field.fill(value)
        with page.expect_navigation():
            filters.get_by_role("button", name="Filter").click()
        return sorted(shown_ids(page))

    assert apply(service="billing") == sorted([ids["billing-test"], ids["billing-prod"]])
    assert apply(environment="test") == sorted([ids["web-test"], ids["billing-test"]])
    assert apply(status="failed") == sorted([ids["web-qa"], ids["billing-test"]])
    assert apply(user="tester") == [ids["web-qa"]]
    assert apply(service="billing", status="canceled") == [ids["billing-prod"]]
    # Days are the reader's: billing-test was made on 2 March in Tokyo (1 March in UTC).
    assert apply(**{"from": "2026-03-02", "to": "2026-03-02"}) == [ids["billing-test"]]
    assert apply(**{"to": "2026-03-01"}) == sorted([ids["web-test"], ids["web-qa"]])
    assert apply(**{"from": "2026-03-02"}) == sorted([ids["billing-test"], ids["billing-prod"]])
    expect(filters.get_by_label("From")).to_have_value("2026-03-02")  # the filter stays shown
    assert "tz=Asia%2FTokyo" in page.url
    # A day that is no day, and a range the wrong way round: said on the field, no 500.
    page.goto(f"{live_server.url}/runs/?from=2026-02-30")
    expect(page.locator("#from-error")).to_contain_text("YYYY-MM-DD")
    page.goto(f"{live_server.url}/runs/?from=2026-03-05&to=2026-03-01")
    expect(page.locator("#to-error")).to_contain_text("before the first")

    # Every run has a permanent URL: the list links to it, and it opens by itself.
    page.goto(f"{live_server.url}/runs/")
    page.get_by_role("link", name=f"#{ids['web-qa']}", exact=True).click()
    expect(page).to_have_url(f"{live_server.url}/runs/{ids['web-qa']}/")
    expect(page.get_by_role("heading", name=f"Run #{ids['web-qa']}: Deploy hello-web on QA"))
    other_tab = page.context.new_page()
    other_tab.goto(f"{live_server.url}/runs/{ids['billing-prod']}/")
    expect(
        other_tab.get_by_role("heading", name=re.compile(f"Run #{ids['billing-prod']}: "))
    ).to_be_visible()
    expect(other_tab.locator("#run-status [data-status]")).to_have_attribute(
        "data-status", "canceled"
    )


@pytest.mark.browser
def test_the_run_box_opens_a_run_or_says_why_not(page, live_server, demo):
    billing = ServiceFactory(slug="billing", name="billing")
    hidden = RunFactory(action=ActionFactory(service=billing), environment=demo.envs["test"],
                      requested_by=demo.dev)  # fmt: skip
    seen = RunFactory(action=demo.deploy, environment=demo.envs["qa"], requested_by=demo.dev)

    # tester's team sees hello-web only: billing's run is not theirs to see.
    sign_in(page, live_server.url, "tester", "pushbutton-tester")
    page.goto(f"{live_server.url}/runs/")
    box = page.get_by_role("search", name="Open a run by number")
    box.get_by_label("Run #").fill(str(seen.pk))
    box.get_by_label("Run #").press("Enter")
    expect(page).to_have_url(f"{live_server.url}/runs/{seen.pk}/")

    page.goto(f"{live_server.url}/runs/")
    box.get_by_label("Run #").fill("999999")
    box.get_by_role("button", name="Open").click()
    expect(page.get_by_role("alert")).to_have_text("There is no run #999999.")
    expect(box.get_by_label("Run #")).to_have_value("999999")

    box.get_by_label("Run #").fill(f"#{hidden.pk}")
    box.get_by_role("button", name="Open").click()
    # A run one may not see reads exactly as one that does not exist; the refusal is kept.
    expect(page.get_by_role("alert")).to_have_text(f"There is no run #{hidden.pk}.")
    assert AuditEvent.objects.filter(verb="access.refused", actor_name="tester").exists()

    box.get_by_label("Run #").fill("forty-two")
    box.get_by_role("button", name="Open").click()
    expect(page.get_by_role("alert")).to_contain_text("digits only")
    assert_accessible(page, what="runs list with an error")


@pytest.mark.browser
def test_cancel_asks_in_a_dialog_first(page, live_server, demo):
    test = demo.envs["test"]
    queue_idle(test)  # so it stays queued, whatever workers run
    run = deploy(demo, environment="test", version="1.2.3")

    sign_in(page, live_server.url, "dev", "pushbutton-dev")
    page.goto(f"{live_server.url}/runs/{run.pk}/")
    dialog = page.get_by_role("dialog", name=f"Cancel run #{run.pk}?")
    expect(dialog).to_be_hidden()

    page.get_by_role("button", name="Cancel", exact=True).click()
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Deploy hello-web on Test stops where it is")
    # The safe choice has the focus; the dialog is modal and accessible.
    expect(dialog.get_by_role("button", name="Keep it running")).to_be_focused()
    assert_accessible(page, what="the cancel dialog")
    dialog.get_by_role("button", name="Keep it running").click()
    expect(dialog).to_be_hidden()
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and not run.cancel_requested_at

    page.get_by_role("button", name="Cancel", exact=True).click()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED

    page.get_by_role("button", name="Cancel", exact=True).click()
    dialog.get_by_role("button", name=f"Cancel run #{run.pk}").click()
    expect(page.get_by_role("status").filter(has_text="Cancel requested")).to_be_visible()
    expect(page.locator("#run-status [data-status]")).to_have_attribute("data-status", "canceled")
    run.refresh_from_db()
    assert (run.status, run.canceled_by_name) == (RunStatus.CANCELED, "dev")


@pytest.mark.browser
def test_run_again_prefills_the_form_with_the_runs_parameters(page, live_server, demo):
    first = finished_run(demo, environment="test", version="1.4.2")

    sign_in(page, live_server.url, "dev", "pushbutton-dev")
    page.goto(f"{live_server.url}/runs/{first.pk}/")
    # "Run again" is worded for what it does: a deploy's says which version it re-deploys.
    page.get_by_role("link", name=re.compile(r"^(Re-deploy 1\.4\.2|Run again)$")).click()

    expect(page).to_have_url(re.compile(r"/services/hello-web/deploy/test/\?"))
    expect(page.get_by_label("Version")).to_have_value("1.4.2")
    expect(page.get_by_label(re.compile("Dry run"))).not_to_be_checked()
    page.get_by_role("button", name="Deploy hello-web on Test").click()

    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    again = Run.objects.exclude(pk=first.pk).get()
    assert (again.parameters, again.rerun_of_id) == ({"version": "1.4.2"}, first.pk)
    expect(page.locator(".facts")).to_contain_text(re.compile(rf"Run again of\s*#{first.pk}"))


def _tokyo(moment: datetime) -> str:
    return moment.astimezone(TOKYO).strftime("%Y-%m-%d %H:%M:%S") + " GMT+9"


@pytest.mark.browser
@pytest.mark.browser_context_args(timezone_id="Asia/Tokyo")
def test_times_are_shown_in_the_readers_time_zone(page, live_server, demo):
    created = (timezone.now() - timedelta(minutes=3)).replace(microsecond=0)
    run = RunFactory(action=demo.deploy, environment=demo.envs["test"], requested_by=demo.dev,
                   status=RunStatus.SUCCESSFUL, created_at=created, started_at=created,
                   finished_at=created + timedelta(seconds=30))  # fmt: skip

    sign_in(page, live_server.url, "dev", "pushbutton-dev")
    page.goto(f"{live_server.url}/runs/")
    when = page.locator(f"tr[data-run='{run.pk}'] time")
    # The server says UTC (true without JavaScript); the page says the reader's time.
    expect(when).to_have_attribute("datetime", created.isoformat().replace("+00:00", "Z"))
    expect(when).to_have_text("3 min ago")
    expect(when).to_have_attribute("title", _tokyo(created))

    page.goto(f"{live_server.url}/runs/{run.pk}/")
    facts = page.locator(".facts")
    expect(facts.locator("time").first).to_have_attribute("title", _tokyo(created))
    expect(facts.locator("time").nth(2)).to_have_attribute(
        "title", _tokyo(created + timedelta(seconds=30))
    )

    # Content htmx swaps in is shown the same way.
    iso = created.isoformat()
    swapped = f'<p id="swapped"><time datetime="{iso}" data-time="relative">x</time></p>'
    page.evaluate("html => htmx.swap('#main', html, {swapStyle: 'beforeend'})", swapped)
    expect(page.locator("#swapped time")).to_have_text("3 min ago")
    expect(page.locator("#swapped time")).to_have_attribute("title", _tokyo(created))

    # The relative texts move on with the clock, each minute, without a reload.
    page.clock.install(time=timezone.now())
    page.goto(f"{live_server.url}/runs/")
    expect(when).to_have_text("3 min ago")
    page.clock.run_for("02:00")
    expect(when).to_have_text("5 min ago")

    # The audit log shows exact times, to the microsecond, in the reader's time zone too.
    row = AuditEvent.objects.order_by("-pk").first()
    page.context.clear_cookies()
    sign_in(page, live_server.url, "auditor", "pushbutton-auditor")
    page.goto(f"{live_server.url}/audit/{row.pk}/")
    fraction = f".{row.created_at.microsecond:06d}" if row.created_at.microsecond else ""
    exact = _tokyo(row.created_at).replace(" GMT", f"{fraction} GMT")
    expect(page.locator(".facts time").first).to_have_text(exact)


@pytest.mark.parametrize(
    ("query", "status", "said"),
    [
        ("run=abc", 400, "digits only"),
        ("run=%D9%A3", 400, "digits only"),  # an Arabic-Indic three: a digit, not ASCII
        ("run=123456789012345678901234567890", 400, "digits only"),
        ("run=0", 404, "There is no run #0."),
        ("from=yesterday", 400, "YYYY-MM-DD"),
        ("to=2026-13-01", 400, "YYYY-MM-DD"),
        ("from=2026-03-02&to=2026-03-01", 400, "before the first"),
        ("from=2026-03-01&tz=..%2F..%2Fetc%2Fpasswd", 200, "No runs match."),
        ("from=2026-03-01&tz=Not%2FA_Zone", 200, "No runs match."),
        ("status=nonsense&page=x", 200, "No runs match."),
    ],
)
def test_bad_input_to_the_runs_list_is_said_never_a_500(demo, query, status, said):
    client = page_client(demo.dev)
    response = client.get(f"/runs/?{query}")
    assert response.status_code == status
    assert said in response.content.decode()
