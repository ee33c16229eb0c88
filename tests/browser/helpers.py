"""What the browser tests share: signing in through the sign-in page, and runs of the
demo's hello-web launched as the portal does, with output written as the worker writes
it (a run's events one by one: tests/runs/helpers.Log; the accessibility check:
tests/browser/a11y.py)."""

import re
from datetime import timedelta

from django.utils import timezone
from playwright.sync_api import expect

from apps.audit.constants import Via
from apps.catalog.constants import ParameterInput
from apps.runs import services
from apps.runs.constants import RunStatus
from apps.runs.events import events_store
from apps.runs.models import Run, RunEvent
from tests.runs.helpers import launch

HELD_QUEUE = "held-by-the-test"


def queue_idle(*environments) -> None:
    """What these environments launch stays queued: their queue is one a worker is
    registered for (its heartbeat row, so a launch is not refused for want of a worker)
    but no worker process takes messages from."""
    from tests.conftest import worker_row

    worker_row(HELD_QUEUE, hostname="idle@held-by-the-test")
    for env in environments:
        env.queue = HELD_QUEUE
        env.save()


def sign_in(page, base_url, username, password):
    """Through the sign-in page, as a person does; the catalog opens."""
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label(re.compile("Username or email", re.I)).fill(username)
    page.get_by_label(re.compile("^Password", re.I)).fill(password)
    page.get_by_role("button", name=re.compile("Sign in", re.I)).click()
    expect(page.get_by_role("heading", name="Catalog")).to_be_visible()


# What a deploy of the demo prints, with Ansible's colours (green ok, yellow changed).
LOG = [
    "",
    "PLAY [Deploy hello-web] ********************************************************",
    "",
    "TASK [Check the version is a release number] ***********************************",
    "\x1b[0;32mok: [localhost] => {\x1b[0m",
    '\x1b[0;32m    "changed": false,\x1b[0m',
    '\x1b[0;32m    "msg": "All assertions passed"\x1b[0m',
    "\x1b[0;32m}\x1b[0m",
    "",
    "TASK [Create the release directory] ********************************************",
    "\x1b[0;33mchanged: [localhost]\x1b[0m",
    "",
    "TASK [Install the release files] ***********************************************",
    "\x1b[0;33mchanged: [localhost] => (item=index.html)\x1b[0m",
    "\x1b[0;33mchanged: [localhost] => (item=VERSION)\x1b[0m",
    "",
    "TASK [Look at the release running now] *****************************************",
    "\x1b[0;32mok: [localhost]\x1b[0m",
]
RECAP = [
    "",
    "PLAY RECAP *********************************************************************",
    "\x1b[0;33mlocalhost\x1b[0m                  : \x1b[0;32mok=9   \x1b[0m \x1b[0;33mchanged=5   "
    "\x1b[0m unreachable=0    failed=0    skipped=0    rescued=0    ignored=0   ",
]


def add_log(run: Run, lines: list[str], *, at=None) -> None:
    """Store `lines` as the run's output, one event each, as the worker does."""
    at = at or timezone.now()
    counter = run.events.count()
    start = run.line_count
    events = []
    for offset, text in enumerate(lines):
        counter += 1
        events.append(
            RunEvent(
                run=run, counter=counter, event="verbose", stdout=text,
                start_line=start + offset, end_line=start + offset + 1,
                created=at + timedelta(milliseconds=10 * offset),
            )
        )  # fmt: skip
    events_store(run.pk, events)
    run.refresh_from_db()


def deploy(demo, *, environment="test", version="1.0.0", user=None, action=None) -> Run:
    """A deploy (or `action`) launched as the portal does; it waits in the queue for a
    worker, when there is one."""
    return launch(
        user=user or demo.dev, action=action or demo.deploy,
        environment=demo.envs[environment],
        parameters={"version": version} if action in (None, demo.deploy) else {},
        given_as=ParameterInput.FORM, via=Via.WEB,
    )  # fmt: skip


def finished_run(demo, **kwargs) -> Run:
    run = deploy(demo, **kwargs)
    services.run_start(run_id=run.pk, worker="tests", pid=0)
    add_log(run, LOG + RECAP)
    return services.run_end(
        run=run, status=RunStatus.SUCCESSFUL, rc=0,
        host_summary={"localhost": {"ok": 9, "changed": 5}}, version=run.version,
    )  # fmt: skip


def running_run(demo, **kwargs) -> Run:
    run = deploy(demo, **kwargs)
    services.run_start(run_id=run.pk, worker="tests", pid=0)
    add_log(run, LOG)
    run.refresh_from_db()
    return run
