"""The README's screenshots, made by the test run itself so they never go stale:
docs/screenshots/<name>.png at 1280x800 in light mode: the catalog, the service page, a
live run and the audit log. Another page's is one more `save_screenshot(page, name)`."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.db import transaction
from playwright.sync_api import expect

from apps.runs.constants import RunStatus
from apps.runs.models import Run, RunEvent
from tests.browser.helpers import deploy, sign_in
from tests.runs.helpers import wait_final

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(settings.BASE_DIR) / "docs" / "screenshots"
VIEWPORT = {"width": 1280, "height": 800}


def save_screenshot(page, name: str) -> Path:
    """The page as it is now, as docs/screenshots/<name>.png: README size, light mode."""
    page.set_viewport_size(VIEWPORT)
    page.emulate_media(color_scheme="light", reduced_motion="reduce")
    page.evaluate("document.fonts.ready")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=path, animations="disabled", caret="hide")
    assert path.stat().st_size > 10_000, f"{path} looks empty"
    return path


def replay_as_running(finished: Run, *, share: float = 0.6) -> Run:
    """A run going on: a copy of `finished` (a real run of the demo's playbook) whose
    output stops part of the way, as a page following it live shows it."""
    events = list(finished.events.order_by("counter"))
    kept = events[: max(1, int(len(events) * share))]
    with transaction.atomic():
        run = Run.objects.get(pk=finished.pk)
        run.pk = None
        run.status, run.rc, run.finished_at = RunStatus.RUNNING, None, None
        run.host_summary, run.error = {}, ""
        run.progress = None  # counted again, from the events kept
        run.line_count, run.event_count = kept[-1].end_line, len(kept)
        run.worker, run.worker_pid, run.marker = "", None, ""
        run.save()
        for event in kept:
            event.pk, event.run = None, run
        RunEvent.objects.bulk_create(kept)
    return run


def test_the_readme_screenshots(page, live_server, celery_worker, demo):
    # Real runs of the demo's playbooks: 1.0.0 deployed on test, verified there, deployed
    # on QA; then 1.1.0 on test.
    for environment, version, action in [
        ("test", "1.0.0", demo.deploy), ("test", "", demo.smoke),
        ("qa", "1.0.0", demo.deploy), ("test", "1.1.0", demo.deploy),
    ]:  # fmt: skip
        run = wait_final(deploy(demo, environment=environment, version=version, action=action))
        assert run.status == "successful", run.error
    going = replay_as_running(run)  # no worker takes it: it stays running

    sign_in(page, live_server.url, "dev", "pushbutton-dev")
    page.goto(f"{live_server.url}/")  # without the "signed in" message
    expect(page.locator("#service-hello-web tr[data-environment=test] .version")).to_contain_text(
        "1.1.0"
    )
    assert save_screenshot(page, "catalog").exists()

    page.goto(f"{live_server.url}/services/hello-web/")
    expect(page.locator('table.service-envs tr[data-environment="qa"] .version')).to_contain_text(
        "1.0.0"
    )
    save_screenshot(page, "service")

    page.goto(f"{live_server.url}/runs/{going.pk}/")
    expect(page.locator("#run-status [data-status]")).to_have_attribute("data-status", "running")
    expect(page.locator("#log")).to_contain_text("TASK [")
    save_screenshot(page, "run")

    page.context.clear_cookies()
    sign_in(page, live_server.url, "auditor", "pushbutton-auditor")
    page.goto(f"{live_server.url}/audit/?service=hello-web")
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    expect(page.locator("table.audit tbody tr").first).to_contain_text(re.compile(r"run\.\w+"))
    save_screenshot(page, "audit")
