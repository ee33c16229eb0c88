"""How far a run has got, kept on the run as its events are stored (apps/runs/events.py),
so a page or a poll reads it from the run's row instead of counting its events.

The state is a small dict on `Run.progress`:

- "tasks": how many tasks (and handlers) have started;
- "task": the name of the last one to start, and "task_counter", its event's counter;
- "hosts": each host a task reported on, and whether any of its results failed.

Its size grows with the hosts of the inventory, never with the length of the log.
"""

from django.db.models import Count, Q

from apps.runs.models import RunEvent

TASK_START_EVENTS = ("playbook_on_task_start", "playbook_on_handler_task_start")
HOST_RESULT_EVENTS = (
    "runner_on_ok",
    "runner_on_failed",
    "runner_on_unreachable",
    "runner_on_skipped",
)


def progress_add(progress: dict, events) -> dict:
    """`progress` after `events` (new ones, not stored before): a new dict."""
    tasks = progress.get("tasks", 0)
    task, task_counter = progress.get("task", ""), progress.get("task_counter", 0)
    hosts = dict(progress.get("hosts", {}))
    for event in events:
        if event.event in TASK_START_EVENTS:
            tasks += 1
            if event.counter > task_counter:
                task, task_counter = event.task, event.counter
        elif event.event in HOST_RESULT_EVENTS and event.host:
            hosts[event.host] = hosts.get(event.host, False) or bool(event.failed)
    return {"tasks": tasks, "task": task, "task_counter": task_counter, "hosts": hosts}


def progress_count(run_id: int) -> dict:
    """The progress of a run counted from all its stored events: done once, for a run
    whose events were stored before the progress was kept on the run."""
    starts = RunEvent.objects.filter(run_id=run_id, event__in=TASK_START_EVENTS)
    last = starts.order_by("-counter").values_list("task", "counter").first()
    hosts = (
        RunEvent.objects.filter(run_id=run_id, event__in=HOST_RESULT_EVENTS)
        .exclude(host="")
        .values("host")
        .annotate(failures=Count("id", filter=Q(failed=True)))
        .order_by()
    )
    return {
        "tasks": starts.count(),
        "task": last[0] if last else "",
        "task_counter": last[1] if last else 0,
        "hosts": {h["host"]: bool(h["failures"]) for h in hosts},
    }
