"""What `pushbutton` prints: for people, lines on the terminal; with --json, the result as
JSON on stdout, and everything meant for people (the log included) on stderr."""

from __future__ import annotations

import json
from datetime import datetime

import click

STATUS_WORDS = {
    "waiting": "is waiting in the deploy queue",
    "queued": "queued",
    "running": "running",
    "successful": "succeeded",
    "failed": "FAILED",
    "canceled": "was canceled",
    "timed_out": "TIMED OUT",
    "lost": "was LOST (its worker died)",
    "superseded": "was SUPERSEDED (a newer version succeeded there while it waited)",
}


class Output:
    def __init__(self, *, as_json: bool):
        self.as_json = as_json

    def say(self, text: str) -> None:
        """A line for people: stdout, or stderr when stdout carries JSON."""
        click.echo(text, err=self.as_json)

    def note(self, text: str) -> None:
        """A remark beside the result (idempotency key, retries): always stderr."""
        click.echo(text, err=True)

    def result(self, value) -> None:
        """The machine-readable result, with --json."""
        if self.as_json:
            click.echo(json.dumps(value, indent=2, sort_keys=True))


def _seconds(run: dict) -> str:
    try:
        started = datetime.fromisoformat(run["started_at"].replace("Z", "+00:00"))
        finished = datetime.fromisoformat(run["finished_at"].replace("Z", "+00:00"))
    except (AttributeError, KeyError, TypeError, ValueError):
        return ""
    return f" in {(finished - started).total_seconds():.0f} s"


def run_title(run: dict) -> str:
    version = f" {run['version']}" if run.get("version") else ""
    dry = " (dry run)" if run.get("check") else ""
    return (
        f"Run #{run['id']}: {run['action']} {run['service']}{version} on {run['environment']}{dry}"
    )


def run_outcome(run: dict, base_url: str) -> str:
    """One line saying how the run ended (or where it is), and where to see it."""
    status = run["status"]
    words = STATUS_WORDS.get(status, status)
    rc = f" (rc {run['rc']})" if run.get("rc") is not None else ""
    line = f"{run_title(run)} {words}{rc}{_seconds(run)}"
    if run.get("error"):
        line += f": {run['error']}"
    return f"{line}\n{base_url}{run['url']}"


def run_facts(run: dict, base_url: str) -> str:
    """`pushbutton status`: what a person checks first."""
    lines = [run_outcome(run, base_url)]
    lines.append(
        f"requested by {run['requested_by']} at {run['created_at']}"
        + (f", started {run['started_at']}" if run.get("started_at") else "")
        + (f", finished {run['finished_at']}" if run.get("finished_at") else "")
    )
    source = run.get("source")
    if source:
        build = f"build {source['commit'][:12]}"
        if source.get("ref"):
            build += f" on {source['ref']}"
        if source.get("pipeline_url"):
            build += f" · {source['pipeline_url']}"
        lines.append(build)
    if run.get("rollback_of"):
        lines.append(f"rollback of run #{run['rollback_of']}: {run.get('reason', '')}")
    if run.get("promoted_from"):
        lines.append(f"promoted from {run['promoted_from']}")
    return "\n".join(lines)


def run_row(run: dict) -> str:
    commit = (run.get("source") or {}).get("commit", "")[:10] or "-"
    return (
        f"#{run['id']:<6} {run['status']:<10} {run['service']:<16} {run['action']:<12} "
        f"{run['environment']:<12} {run.get('version') or '-':<12} {commit:<10} "
        f"{run['requested_by']:<12} {run['created_at']}"
    )


RUN_HEADER = (
    f"{'RUN':<7} {'STATUS':<10} {'SERVICE':<16} {'ACTION':<12} {'ENVIRONMENT':<12} "
    f"{'VERSION':<12} {'COMMIT':<10} {'BY':<12} CREATED"
)


def _ordinal(number: int) -> str:
    if 10 <= number % 100 <= 20:
        return f"{number}th"
    return f"{number}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(number % 10, 'th') }"


def waiting_line(run: dict) -> str:
    """Where a run waiting in the deploy queue stands, in a line."""
    waiting = run.get("waiting") or {}
    place = _ordinal(waiting.get("position") or 1)
    return (
        f"Run #{run['id']} waits in the deploy queue, {place} in line: {waiting.get('reason', '')}"
    )


def status_line(run: dict) -> str:
    """What a followed run's status turned to, before its log begins."""
    if run["status"] == "waiting":
        return waiting_line(run)
    return f"Run #{run['id']} is {run['status']}."
