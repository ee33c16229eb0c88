"""The quality bar of every main page, in Chromium: axe-core finds no serious or critical
violation (light and dark), every control has a label, the deploy flow works from the
keyboard alone with a visible focus, and nothing needs horizontal scrolling on a phone
or on a wide screen."""

import re

import pytest
from playwright.sync_api import expect

from apps.audit.models import AuditEvent
from apps.runs.models import Run
from apps.schedules.models import Schedule
from tests.browser.a11y import accessibility_violations, assert_accessible, describe
from tests.browser.helpers import finished_run, running_run, sign_in
from tests.schedules.helpers import schedule_make

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORDS = {
    "dev": "pushbutton-dev",
    "tester": "pushbutton-tester",
    "auditor": "pushbutton-auditor",
    "ops": "pushbutton-ops",
}


@pytest.fixture
def world(demo):
    """The demo with a finished deploy of 1.0.0 on test, one of 1.1.0 running there, and
    the developer's nightly smoke test of test."""
    done = finished_run(demo, environment="test", version="1.0.0")
    going = running_run(demo, environment="test", version="1.1.0")
    audit_row = AuditEvent.objects.filter(verb="run.requested").order_by("-pk").first()
    schedule_make(demo.dev, demo.smoke, demo.envs["test"], name="Nightly smoke test")
    return demo, done, going, audit_row


def main_pages(base: str, done: Run, going: Run, audit_row) -> list[tuple[str, str, str]]:
    """(who, what, url) of each main page; who is None for the sign-in page."""
    return [
        (None, "sign-in", "/accounts/login/"),
        (None, "password reset", "/accounts/password/reset/"),
        ("dev", "catalog", "/"),
        ("dev", "run form", "/services/hello-web/deploy/test/"),
        ("dev", "finished run", f"/runs/{done.pk}/"),
        ("dev", "running run", f"/runs/{going.pk}/"),
        ("dev", "runs list", "/runs/"),
        ("dev", "service page", "/services/hello-web/"),
        ("dev", "what runs where", "/what-runs-where/"),
        ("dev", "promote", "/services/hello-web/environments/qa/promote/"),
        ("dev", "roll back", "/services/hello-web/environments/test/rollback/"),
        ("dev", "lock form", "/environments/test/lock/?service=hello-web"),
        ("dev", "profile", "/profile/"),
        ("dev", "MFA setup", "/accounts/2fa/totp/activate/"),
        ("dev", "schedules", "/schedules/"),
        ("dev", "new schedule", "/schedules/new/"),
        ("dev", "schedule", f"/schedules/{Schedule.objects.get(name='Nightly smoke test').pk}/"),
        ("dev", "insights", "/insights/"),
        ("ops", "workers", "/workers/"),
        ("auditor", "audit list", "/audit/"),
        ("auditor", "audit detail", f"/audit/{audit_row.pk}/"),
    ]


def visit_main_pages(page, live_server, world):
    """Open each main page, signing in as whoever may see it; yields (what, url) on each."""
    _, done, going, audit_row = world
    signed_in = None
    for who, what, path in main_pages(live_server.url, done, going, audit_row):
        if who != signed_in:
            page.context.clear_cookies()
            if who:
                sign_in(page, live_server.url, who, PASSWORDS[who])
            signed_in = who
        response = page.goto(f"{live_server.url}{path}")
        assert response.ok, f"{what}: {response.status}"
        expect(page.locator("h1").first).to_be_visible()
        yield what, path


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_violation_on_any_main_page(page, live_server, world, scheme):
    page.emulate_media(color_scheme=scheme)
    found = {}
    for what, _ in visit_main_pages(page, live_server, world):
        # The page follows the system setting: light text on a dark page, or the reverse.
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        shade = sum(int(c) for c in re.findall(r"\d+", background)[:3]) / 3
        assert (shade < 80) if scheme == "dark" else (shade > 200), (what, background)
        if violations := accessibility_violations(page):
            found[what] = describe(violations)
    assert not found, "\n".join(f"--- {what} ({scheme})\n{text}" for what, text in found.items())


def test_the_accessibility_check_fails_where_axe_finds_a_violation(page):
    page.set_content(
        '<!doctype html><html lang="en"><title>Bad</title><main><h1>Bad</h1>'
        '<input type="text" name="version"></main></html>'
    )
    with pytest.raises(AssertionError, match=r"label \(critical\)"):
        assert_accessible(page)


UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter((el) => el.type !== 'hidden' && el.getClientRects().length)
  .filter((el) => {
    const named = (el.labels && [...el.labels].some((l) => l.textContent.trim()))
      || (el.getAttribute('aria-label') || '').trim()
      || el.getAttribute('aria-labelledby')
      || (el.tagName === 'BUTTON' && el.textContent.trim());
    return !named;
  })
  .map((el) => el.outerHTML.slice(0, 120))"""


def test_every_control_on_the_main_pages_has_a_label(page, live_server, world):
    unlabelled = {}
    for what, _ in visit_main_pages(page, live_server, world):
        if controls := page.evaluate(UNLABELLED):
            unlabelled[what] = controls
    assert not unlabelled


FOCUS_RING = """(el) => {
  const style = getComputedStyle(el);
  return {visible: el.matches(':focus-visible'), outline: style.outlineStyle,
          width: parseFloat(style.outlineWidth), shadow: style.boxShadow};
}"""


def tab_to(page, predicate: str, *, limit: int = 60) -> dict:
    """Press Tab until the focused element satisfies `predicate` (JS, given the element)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"(({predicate}))(document.activeElement)"):
            return page.evaluate(FOCUS_RING, page.evaluate_handle("document.activeElement"))
    raise AssertionError(f"Tab never reached {predicate}")


def assert_focus_visible(ring: dict) -> None:
    assert ring["visible"], "the focused element does not match :focus-visible"
    assert (ring["outline"] != "none" and ring["width"] >= 2) or ring["shadow"] != "none", ring


def test_a_developer_deploys_with_the_keyboard_alone(page, live_server, demo):
    page.goto(f"{live_server.url}/accounts/login/")
    # The sign-in form, typed: the username field has the focus when the page opens.
    page.keyboard.type("dev")
    assert_focus_visible(tab_to(page, "(el) => el.name === 'password'"))
    page.keyboard.type("pushbutton-dev")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Catalog")).to_be_visible()

    deploy_on_test = page.locator("#service-hello-web tr[data-environment=test]").get_by_role(
        "link", name="Deploy"
    )
    href = deploy_on_test.get_attribute("href")
    ring = tab_to(page, f"(el) => el.getAttribute('href') === {href!r}")
    assert_focus_visible(ring)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=re.compile("Deploy"))).to_be_visible()

    # The version field has the focus as the form opens.
    expect(page.get_by_label("Version")).to_be_focused()
    page.keyboard.type("2.0.0")
    assert_focus_visible(
        tab_to(page, "(el) => el.type === 'submit' && /^Deploy/.test(el.textContent)")
    )
    page.keyboard.press("Enter")

    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    run = Run.objects.get()
    assert (run.version, run.environment.slug, run.requested_by_name) == ("2.0.0", "test", "dev")
    expect(page.get_by_role("heading", name=re.compile(f"Run #{run.pk}"))).to_be_visible()


NO_SIDEWAYS = "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"


@pytest.mark.parametrize(
    "viewport",
    [{"width": 375, "height": 800}, {"width": 1920, "height": 1080}],
    ids=["phone", "wide"],
)
def test_no_main_page_scrolls_sideways(page, live_server, world, viewport):
    page.set_viewport_size(viewport)
    too_wide = {}
    for what, _ in visit_main_pages(page, live_server, world):
        scroll_width, client_width = page.evaluate(NO_SIDEWAYS)
        if scroll_width > client_width:
            too_wide[what] = (scroll_width, client_width)
    assert not too_wide, f"scrolls sideways at {viewport['width']}px: {too_wide}"
