"""The event sink: masking, batching and what it learns from the events."""

from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.runs import services
from apps.runs.constants import RunStatus
from apps.runs.events import MASK, START_EVENT, EventSink
from apps.runs.models import Run, RunEvent
from apps.runs.runner import _outcome
from apps.runs.selectors.log import run_log_tail
from tests.factories import RunFactory
from tests.runs.helpers import T0


def _event(counter, name="runner_on_ok", stdout="ok: [web1]", **data):
    return {
        "counter": counter,
        "event": name,
        "stdout": stdout,
        "start_line": counter - 1,
        "end_line": counter,
        "created": "2026-11-27T10:00:00.000000+00:00",
        "event_data": {"host": "web1", "task": "Install", "play": "Deploy", **data},
    }


@pytest.fixture
def run(db):
    return RunFactory()


def test_it_stores_events_in_batches_not_one_insert_per_event(run):
    sink = EventSink(run.pk, batch_size=500, flush_seconds=3600)
    with CaptureQueriesContext(connection) as queries:
        for counter in range(1, 1201):
            assert sink.add(_event(counter)) is False  # the runner keeps no copy on disk
        sink.flush()

    inserts = [q for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    assert RunEvent.objects.filter(run=run).count() == 1200
    # Three batches; SQLite splits each into statements of at most 999 parameters.
    assert 1 <= len(inserts) <= 1200 / 50
    run.refresh_from_db()
    assert run.event_count == 1200
    assert run.line_count == 1200


def test_the_first_line_is_stored_at_once_and_later_ones_in_batches(run):
    def stored():
        return list(RunEvent.objects.filter(run=run).values_list("counter", flat=True))

    sink = EventSink(run.pk, batch_size=500, flush_seconds=3600)
    sink.add(_event(1, "playbook_on_start", stdout=""))
    assert stored() == []  # no line yet: nothing for a watcher to see

    sink.add(_event(2, "playbook_on_play_start", stdout="PLAY [Deploy] ****"))
    assert stored() == [1, 2]  # the run's first line, at once

    sink.add(_event(3))
    sink.add(_event(4))
    assert stored() == [1, 2]  # then in batches
    sink.flush()
    assert stored() == [1, 2, 3, 4]


def test_the_portals_first_line_is_stored_at_once_and_ansibles_are_numbered_after_it(run):
    sink = EventSink(run.pk, secrets=["hunter22"], batch_size=500, flush_seconds=3600)
    sink.start("Pushbutton runs deploy.yml on web1 (hunter22)", T0)
    first = RunEvent.objects.get(run=run)
    assert (first.counter, first.event, first.start_line, first.end_line) == (
        1, START_EVENT, 0, 1,
    )  # fmt: skip
    assert first.stdout == f"Pushbutton runs deploy.yml on web1 ({MASK})"
    assert first.created == T0

    sink.add(_event(1, "playbook_on_start", stdout=""))
    sink.add(_event(2, "playbook_on_play_start", stdout="PLAY [Deploy] ****"))
    sink.add(_event(3))
    sink.flush()

    rows = RunEvent.objects.filter(run=run).order_by("counter")
    assert [(e.counter, e.start_line, e.end_line) for e in rows] == [
        (1, 0, 1), (2, 1, 2), (3, 2, 3), (4, 3, 4),
    ]  # fmt: skip
    run.refresh_from_db()
    assert (run.event_count, run.line_count) == (4, 4)
    lines = run_log_tail(run=run)[0]
    assert [line.number for line in lines] == [1, 2, 3, 4]
    assert "Pushbutton runs deploy.yml" in lines[0].html
    assert "PLAY [Deploy]" in lines[2].html


def test_it_masks_every_secret_in_stdout_and_data(run):
    sink = EventSink(run.pk, secrets=["hunter2-secret", "xy"])
    sink.add(
        _event(1, stdout="password is hunter2-secret", res={"msg": "got hunter2-secret"}, cmd="xy")
    )
    sink.flush()

    event = RunEvent.objects.get(run=run)
    assert event.stdout == f"password is {MASK}"
    assert event.data["res"]["msg"] == f"got {MASK}"
    assert "hunter2-secret" not in str(event.data)


def test_a_retried_batch_does_not_duplicate_events(run):
    sink = EventSink(run.pk)
    sink.add(_event(1))
    sink.add(_event(2))
    batch = list(sink.buffer)
    sink.flush()
    sink.buffer = batch  # as if the connection dropped after the INSERT and it was retried
    sink.flush()

    assert list(RunEvent.objects.filter(run=run).values_list("counter", flat=True)) == [1, 2]


def test_it_reads_the_host_summary_and_reported_version(run):
    sink = EventSink(run.pk)
    sink.add(
        _event(
            1,
            "playbook_on_stats",
            ok={"web1": 5, "web2": 4},
            changed={"web1": 2},
            failures={"web2": 1},
            dark={},
            skipped={"web2": 1},
            processed={"web1": 1, "web2": 1},
            artifact_data={"version": "1.2.3"},
        )
    )
    assert sink.host_summary["web1"] == {
        "ok": 5, "changed": 2, "failed": 0, "unreachable": 0,
        "skipped": 0, "rescued": 0, "ignored": 0,
    }  # fmt: skip
    assert sink.host_summary["web2"]["failed"] == 1
    assert sink.artifact_data == {"version": "1.2.3"}


def test_it_notices_a_play_that_matched_no_host(run):
    sink = EventSink(run.pk)
    sink.add(_event(1, "playbook_on_no_hosts_matched", stdout="skipping: no hosts matched"))
    assert sink.no_hosts_matched


def test_failed_tasks_are_marked_unless_ignored(run):
    sink = EventSink(run.pk)
    sink.add(_event(1, "runner_on_failed"))
    sink.add(_event(2, "runner_on_failed", ignore_errors=True))
    sink.add(_event(3, "runner_on_unreachable"))
    sink.flush()
    assert list(RunEvent.objects.filter(run=run).values_list("failed", flat=True)) == [
        True,
        False,
        True,
    ]


def test_it_masks_secrets_in_host_play_and_task_names(run):
    # Ansible templates names: `name: "Log in with {{ db_password }}"` shows the value.
    sink = EventSink(run.pk, secrets=["hunter2-secret"])
    sink.add(
        _event(
            1,
            host="web-hunter2-secret",
            play="Deploy as hunter2-secret",
            task="Log in with hunter2-secret",
        )
    )
    sink.flush()
    event = RunEvent.objects.get(run=run)
    assert "hunter2-secret" not in event.host + event.play + event.task
    assert event.task == f"Log in with {MASK}"


def test_a_reported_version_is_cut_to_what_a_run_keeps(run):
    sink = EventSink(run.pk)
    sink.artifact_data = {"version": "9" * 300}
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)

    outcome = _outcome(SimpleNamespace(rc=0, status="successful"), sink, None)
    ended = services.run_end(run=run, status=outcome.status, version=outcome.version)

    # Cut once, where the run ends (the one place that knows the column's length).
    assert ended.version == "9" * 200
    run.refresh_from_db()
    assert run.version == "9" * 200


def test_it_stores_output_with_nul_characters_and_lone_surrogates(run):
    # PostgreSQL stores no NUL in text or JSON, and no database stores a lone surrogate
    # (how Ansible passes on bytes of a command's output that are not UTF-8).
    sink = EventSink(run.pk)
    sink.add(
        _event(
            1,
            stdout="TASK [a \x00 b] bad \udcff byte",
            host="web\x00",
            task="a \x00 b",
            res={"stdout": "bad \udcff byte \x00", "lines": ["\x00"]},
        )
    )
    sink.flush()

    event = RunEvent.objects.get(run=run)
    assert event.stdout == "TASK [a \u2400 b] bad \ufffd byte"
    assert (event.host, event.task) == ("web\u2400", "a \u2400 b")
    assert event.data["res"] == {"stdout": "bad \ufffd byte \u2400", "lines": ["\u2400"]}
