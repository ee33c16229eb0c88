"""Following a run: its log as it grows, and its end.

The log is read from GET /api/v1/runs/N/events/?after=C, which answers the run's status
(read before the events): once that status is final and a page came back short, every
line has been printed. A run that has ended already is answered at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from pushbutton_cli.exits import FINAL_STATUSES
from pushbutton_cli.portal import Portal

PAGE = 1000
# Until the first line of a run that is queued for a worker or running (the portal writes
# one as Ansible starts: it comes within a second of the start), for QUIET_AFTER seconds
# at most; asked for this often, it shows soon after.
POLL_STARTING = 0.1
POLL_LIVELY = 0.25  # seconds between asks while lines keep coming (or none came yet)
POLL_QUIET = 1.0  # after QUIET_AFTER seconds without a new line
QUIET_AFTER = 10.0
POLL_WAIT = 1.0  # `wait`, which reads only the status


class WaitTimeout(Exception):
    """The deadline passed before the run ended; `run` is the run as last seen."""

    def __init__(self, run: dict):
        super().__init__(f"run {run.get('id')} is still {run.get('status')}")
        self.run = run


def _text(stdout: str) -> str:
    # Ansible prints Windows line ends to the runner; a terminal wants \n.
    return stdout.replace("\r\n", "\n").rstrip("\n")


def _show(events: list, print_line, on_event) -> None:
    for event in events:
        if on_event is not None:
            on_event(event)
        elif event["stdout"]:
            print_line(_text(event["stdout"]))


def dump(
    portal: Portal,
    run_id: int,
    *,
    print_line: Callable[[str], None],
    on_event: Callable[[dict], None] | None = None,
) -> None:
    """Print the run's log as it is now."""
    after = 0
    while True:
        page = portal.get(f"/api/v1/runs/{run_id}/events/", {"after": after, "limit": PAGE})
        _show(page["events"], print_line, on_event)
        if len(page["events"]) < PAGE:
            return
        after = page["events"][-1]["counter"]


def follow(
    portal: Portal,
    run_id: int,
    *,
    print_line: Callable[[str], None],
    deadline: float | None = None,
    on_event: Callable[[dict], None] | None = None,
    on_status: Callable[[dict], None] | None = None,
    shown: dict | None = None,
) -> dict:
    """Print the run's log from the start as it grows (each event's text through
    `print_line`, or each event to `on_event`), until the run ended; return the run.
    While it waits in the deploy queue, `on_status` hears of the run each time its
    place in line or its status changes from what was `shown` (the run as the caller
    last printed it). WaitTimeout when `deadline` (the clock's
    monotonic time) passes first."""
    clock = portal.clock
    after, last_line, started = 0, clock.monotonic(), False
    seen = _state(shown) if shown else None
    while True:
        page = portal.get(f"/api/v1/runs/{run_id}/events/", {"after": after, "limit": PAGE})
        if on_status is not None and not after:
            seen = _waiting_news(portal, run_id, page["status"], seen, on_status)
        events = page["events"]
        _show(events, print_line, on_event)
        now = clock.monotonic()
        if events:
            after, last_line, started = events[-1]["counter"], now, True
        if len(events) >= PAGE:
            continue
        if page["status"] in FINAL_STATUSES:
            return portal.get(f"/api/v1/runs/{run_id}/")
        if deadline is not None and now >= deadline:
            raise WaitTimeout(portal.get(f"/api/v1/runs/{run_id}/"))
        pause = _pause(page["status"], started, now - last_line)
        clock.sleep(pause if deadline is None else max(0.0, min(pause, deadline - now)))


def _pause(status: str, started: bool, silent_for: float) -> float:
    """Seconds until the next ask: often until a queued or running run printed its first
    line, then as lines come; less often once they stopped, or while it waits its turn."""
    if status in ("queued", "running") and not started and silent_for < QUIET_AFTER:
        return POLL_STARTING
    return POLL_LIVELY if silent_for < QUIET_AFTER else POLL_QUIET


def _state(run: dict) -> tuple:
    return (run["status"], json.dumps(run.get("waiting"), sort_keys=True))


def _waiting_news(portal: Portal, run_id: int, status: str, seen, on_status):
    """Before the first line: tell `on_status` where the run stands when that changed
    (its place in line while it waits, then that it left the line). Returns what it saw."""
    if status != "waiting":
        if seen is not None and seen[0] == "waiting":
            on_status({"id": run_id, "status": status})
        return (status, None)
    run = portal.get(f"/api/v1/runs/{run_id}/")
    now = _state(run)
    if seen is not None and now != seen:
        on_status(run)
    return now


def wait(portal: Portal, run_id: int, *, deadline: float | None = None) -> dict:
    """The run once it ended (at once when it has); WaitTimeout when `deadline` passes."""
    clock = portal.clock
    while True:
        run = portal.get(f"/api/v1/runs/{run_id}/")
        if run["status"] in FINAL_STATUSES:
            return run
        now = clock.monotonic()
        if deadline is not None and now >= deadline:
            raise WaitTimeout(run)
        clock.sleep(POLL_WAIT if deadline is None else max(0.0, min(POLL_WAIT, deadline - now)))
