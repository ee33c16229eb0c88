"""Issue #7, expectations 10 and 16 together: the log's line times are the reader's local
times, on the page and in the download alike (Chromium in Tokyo)."""

import datetime
import re

import pytest
from playwright.sync_api import expect

from apps.runs import services
from apps.runs.constants import RunStatus
from tests.browser.helpers import add_log, deploy, queue_idle, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FIVE_UTC = datetime.datetime(2026, 11, 27, 5, 0, 0, tzinfo=datetime.UTC)


@pytest.mark.browser_context_args(timezone_id="Asia/Tokyo")
def test_line_times_are_local_on_the_page_and_in_the_download(page, live_server, demo):
    queue_idle(*demo.envs.values())
    run = deploy(demo, environment="test", version="1.0.0")
    services.run_start(run_id=run.pk, worker="tests", pid=0)
    add_log(run, ["PLAY [Deploy hello-web] ***", "ok: [localhost]"], at=FIVE_UTC)
    services.run_end(run=run, status=RunStatus.SUCCESSFUL, rc=0)

    sign_in(page, live_server.url, "dev", "pushbutton-dev")
    page.goto(f"{live_server.url}/runs/{run.pk}/")

    expect(page.locator("#output")).to_contain_text("line times in Asia/Tokyo")
    expect(page.locator("#L1 .ts")).to_have_text("14:00:00")  # 05:00 UTC is 14:00 in Tokyo
    body = page.request.get(f"{live_server.url}/runs/{run.pk}/log/download/").text()
    first, second = body.splitlines()[:2]
    assert first == "1\t2026-11-27T14:00:00.000+09:00\tPLAY [Deploy hello-web] ***"
    assert re.match(r"2\t2026-11-27T14:00:00\.010\+09:00\tok: \[localhost\]$", second)
