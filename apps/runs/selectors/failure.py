"""Where a run stopped, for the top of its page: the task that failed on which host, the
first lines of its error and where they are in the log; and how many tasks the run's
playbook has, to say "stopped at task 2 of 7"."""

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from apps.catalog import git
from apps.catalog.models import PlaybookVersion
from apps.runs.ansi import event_lines, plain_text
from apps.runs.constants import RunStatus
from apps.runs.models import Run, RunEvent

ERROR_LINES = 6
# The statuses whose page says where the run stopped (a canceled run stopped on purpose).
STOPPED_STATUSES = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.LOST})
FAILED_EVENTS = ("runner_on_failed", "runner_on_unreachable")
TASK_START = "playbook_on_task_start"  # handlers (run only when notified) are not counted
TASK_LISTS = ("pre_tasks", "tasks", "post_tasks")
# Tasks that pull in other tasks: their count is not in the playbook file.
INCLUDES = frozenset(
    prefix + name
    for prefix in ("", "ansible.builtin.", "ansible.legacy.")
    for name in ("include_tasks", "import_tasks", "include_role", "import_role", "include")
)
FALSE = (False, "false", "no", "False", "No", "FALSE", "NO", "n", "off")
TRUE = (True, "true", "yes", "True", "Yes", "TRUE", "YES", "y", "on")


class Uncounted(Exception):
    """The playbook's task count is not in its file (roles, includes, a templated
    gather_facts, a strategy other than linear)."""


def _tasks(tasks) -> int:
    if tasks is None:
        return 0
    if not isinstance(tasks, list):
        raise Uncounted
    count = 0
    for task in tasks:
        if not isinstance(task, dict):
            raise Uncounted
        if "block" in task:
            # A rescue runs only when the block failed: not counted (seen ones are).
            count += _tasks(task["block"]) + _tasks(task.get("always"))
        elif INCLUDES.intersection(task):
            raise Uncounted
        else:
            count += 1
    return count


def _play_tasks(play) -> int:
    if not isinstance(play, dict) or "import_playbook" in play or play.get("roles"):
        raise Uncounted
    if play.get("strategy", "linear") != "linear":
        raise Uncounted
    gather = play.get("gather_facts", play.get("gather", True))
    if gather not in FALSE + TRUE:
        raise Uncounted
    return (gather in TRUE) + sum(_tasks(play.get(name)) for name in TASK_LISTS)


def playbook_task_count(content: bytes) -> int | None:
    """How many tasks a run of this playbook starts, counted in its file; None when the
    file alone cannot tell.

    Ansible's events give no total (a play's start does not say how many tasks follow),
    and `ansible-playbook --list-tasks` would cost a second Ansible start per run. The
    pinned playbook file is at hand and never changes, so its tasks are counted here,
    once per playbook version, as Ansible's linear strategy starts them: one "Gathering
    Facts" unless gather_facts is off, then each task of pre_tasks, tasks and post_tasks
    once (whatever the hosts, a loop or a false `when`: a skipped task starts too), a
    block's tasks and its `always`. Not counted: handlers and a block's `rescue`, which
    run only sometimes (a page shows at least the tasks seen). Roles, includes and
    imports, a templated gather_facts or another strategy leave the count unknown: the
    page then says only where the run stopped."""
    try:
        plays = yaml.load(content, Loader=git._PlaybookLoader)  # noqa: S506 - a safe loader
        if not isinstance(plays, list):
            return None
        return sum(_play_tasks(play) for play in plays)
    except (Uncounted, yaml.YAMLError):
        return None


@lru_cache(maxsize=256)
def _count_at(mirror: str, commit: str, path: str) -> int | None:
    # A file that cannot be read now (a mirror being cloned) raises: not cached.
    return playbook_task_count(git.file_read(Path(mirror), commit, path))


@lru_cache(maxsize=256)
def _count_of(version_id: int, commit: str, path: str) -> int | None:
    # The version's source only when the count is not known yet (a poll of a running
    # run asks for it each time something new arrived).
    version = PlaybookVersion.objects.select_related("source").filter(pk=version_id).first()
    if version is None:
        return None
    return _count_at(str(version.source.mirror_path), commit, path)


def run_task_total(*, run: Run) -> int | None:
    """The number of tasks the run's pinned playbook starts (see playbook_task_count);
    None when unknown. Read once per playbook version (cached in the process)."""
    if run.playbook_version_id is None or not run.playbook_commit:
        return None
    try:
        return _count_of(run.playbook_version_id, run.playbook_commit, run.playbook_path)
    except (git.GitError, OSError):
        return None


@dataclass(frozen=True)
class RunFailure:
    task: str  # the task that failed ("" when the run stopped without a failed task)
    host: str
    lines: list[str]  # the first lines of its error, as the log shows them
    line: int  # where the error starts in the log (0: none)
    task_number: int  # the task it stopped at, counted from 1 (0: before any task)
    task_total: int | None  # the playbook's tasks, when known (never fewer than seen)


def run_failure(*, run: Run) -> RunFailure | None:
    """Where a failed, timed-out or lost run stopped: the first task that failed, on which
    host, the first lines of its error and their line in the log; else the task it was
    in. None for a run that did not stop so."""
    if run.status not in STOPPED_STATUSES:
        return None
    event = (
        RunEvent.objects.filter(run=run, event__in=FAILED_EVENTS, failed=True)
        .only("counter", "task", "host", "stdout", "start_line", "end_line")
        .order_by("counter")
        .first()
    )
    starts = RunEvent.objects.filter(run=run, event=TASK_START)
    seen = starts.count()
    if event is None:
        last_task = starts.order_by("-counter").values_list("task", flat=True).first()
        task, host, lines, line, number = plain_text(last_task or ""), "", [], 0, seen
    else:
        texts = event_lines(event.stdout, event.end_line - event.start_line)
        first = next((i for i, text in enumerate(texts) if text.strip()), 0)
        lines = [plain_text(text) for text in texts[first : first + ERROR_LINES]]
        line = event.start_line + first + 1 if texts else 0
        task, host = plain_text(event.task), plain_text(event.host)
        number = starts.filter(counter__lt=event.counter).count()
    total = run_task_total(run=run)
    return RunFailure(
        task=task,
        host=host,
        lines=lines,
        line=line,
        task_number=number,
        task_total=max(total, seen) if total is not None else None,
    )
