from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet

from apps.accounts.permissions import run_filter, run_view_refusal
from apps.catalog.constants import ActionKind
from apps.runs.ansi import ansi_to_html
from apps.runs.constants import RunStatus
from apps.runs.models import Run, RunEvent

TAIL_LINES = 1000
CHUNK_LINES = 2000


@dataclass(frozen=True)
class LogLine:
    number: int
    html: str
    created: datetime | None
    failed: bool


def run_list(*, user, filters: dict | None = None) -> QuerySet[Run]:
    """Runs the user may see, newest first, narrowed by service, environment, status, user."""
    runs = (
        Run.objects.select_related("service", "environment")
        .filter(run_filter(user))
        .order_by("-id")
    )
    filters = filters or {}
    if filters.get("service"):
        runs = runs.filter(service__slug=filters["service"])
    if filters.get("environment"):
        runs = runs.filter(environment__slug=filters["environment"])
    if filters.get("status"):
        runs = runs.filter(status=filters["status"])
    if filters.get("user"):
        runs = runs.filter(requested_by_name=filters["user"])
    return runs


def run_get(*, user, run_id: int) -> Run | None:
    """The run, or None when there is none; PermissionDenied (with the reason) when
    the user may not see it."""
    run = (
        Run.objects.select_related("service", "environment", "playbook_version__source")
        .filter(pk=run_id)
        .first()
    )
    if run is not None and (reason := run_view_refusal(user, run)):
        raise PermissionDenied(reason)
    return run


def current_versions() -> dict[tuple[int, int], Run]:
    """The run that put the current version on each (service, environment)."""
    latest: dict[tuple[int, int], Run] = {}
    runs = (
        Run.objects.filter(
            status=RunStatus.SUCCESSFUL,
            check_mode=False,
            action_kind__in=[ActionKind.DEPLOY, ActionKind.ROLLBACK],
        )
        .exclude(version="")
        .order_by("service_id", "environment_id", "-finished_at")
        .only("id", "service_id", "environment_id", "version", "requested_by_name", "finished_at")
    )
    for run in runs:
        latest.setdefault((run.service_id, run.environment_id), run)
    return latest


def _lines(events) -> list[LogLine]:
    lines = []
    for event in events:
        if not event.stdout:
            continue
        for offset, text in enumerate(event.stdout.splitlines()):
            lines.append(
                LogLine(
                    event.start_line + offset + 1, ansi_to_html(text), event.created, event.failed
                )
            )
    return lines


def run_log_tail(*, run: Run, lines: int = TAIL_LINES) -> tuple[list[LogLine], int]:
    """The last `lines` lines of the log and the counter of the last event shown."""
    events = list(
        RunEvent.objects.filter(run=run, end_line__gt=max(run.line_count - lines, 0))
        .only("counter", "stdout", "start_line", "created", "failed")
        .order_by("counter")
    )
    return _lines(events), (events[-1].counter if events else 0)


def run_log_after(*, run: Run, counter: int, limit: int = 2000) -> tuple[list[LogLine], int, bool]:
    """Lines of the events after `counter` (what a live page has not shown yet), the
    last event's counter, and whether more events may follow (the limit was hit).
    Events without output add no line: the limit counts events, not lines."""
    events = list(
        RunEvent.objects.filter(run=run, counter__gt=counter)
        .only("counter", "stdout", "start_line", "created", "failed")
        .order_by("counter")[:limit]
    )
    return _lines(events), (events[-1].counter if events else counter), len(events) >= limit


def run_log_before(*, run: Run, line: int, lines: int = CHUNK_LINES) -> list[LogLine]:
    """The `lines` lines before line number `line`, for "show earlier lines"."""
    events = (
        RunEvent.objects.filter(
            run=run, end_line__gt=max(line - 1 - lines, 0), start_line__lt=line - 1
        )
        .only("counter", "stdout", "start_line", "created", "failed")
        .order_by("counter")
    )
    return [entry for entry in _lines(events) if line - lines <= entry.number < line]
