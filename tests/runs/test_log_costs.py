"""What a run page and its live poll cost does not grow with the run's log: the progress
is kept on the run as batches are stored, a poll with nothing new reads no event."""

import random
import zoneinfo
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.template import Context, Template
from django.template.loader import render_to_string
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.html import escape

from apps.accounts.models import Right
from apps.runs import selectors
from apps.runs.ansi import (
    COLOURS,
    SEQUENCE,
    SGR,
    VISIBLE,
    ansi_to_html,
    event_lines,
    plain_lines,
    plain_lines_of,
    plain_text,
)
from apps.runs.constants import RunStatus
from apps.runs.events import EventSink, events_store
from apps.runs.models import Run, RunEvent
from apps.runs.progress import progress_count
from tests.factories import EnvironmentFactory, GrantFactory, RunFactory, TeamFactory, UserFactory
from tests.runs.helpers import RED, RESET, Log

EVENT_TABLE = "runs_runevent"


@pytest.fixture
def environment(db):
    return EnvironmentFactory(slug="staging")


@pytest.fixture
def owner(environment):
    user = UserFactory(username="owner")
    GrantFactory(team=TeamFactory(members=[user]), environment=environment, right=Right.RUN)
    return user


@pytest.fixture
def client(owner):
    client = Client()
    client.force_login(owner)
    return client


def _run(owner, lines: int, status=RunStatus.RUNNING) -> tuple[Run, Log]:
    run = RunFactory(requested_by=owner, environment=environment_of(owner))
    log = Log(run)
    log.add("playbook_on_task_start", "TASK [Install]", task="Install")
    log.add("runner_on_ok", "ok: [web1]", host="web1")
    log.add("runner_on_failed", "fatal: [web2]", host="web2", failed=True)
    log.lines(lines)
    Run.objects.filter(pk=run.pk).update(status=status)
    run.refresh_from_db()
    return run, log


@pytest.fixture
def run_with_log(owner):
    return _run(owner, 9000)


def environment_of(user):
    return user.teams.first().grants.first().environment


def _queries(client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
        assert response.status_code == 200
    return [q["sql"] for q in queries.captured_queries]


def _event(counter: int, name: str, **data) -> dict:
    return {
        "counter": counter,
        "event": name,
        "stdout": f"{name} {counter}",
        "start_line": counter - 1,
        "end_line": counter,
        "event_data": data,
    }


def test_the_sink_keeps_the_progress_as_it_stores_each_batch(db):
    run = RunFactory()
    sink = EventSink(run.pk, batch_size=3, flush_seconds=3600)
    events = [
        _event(1, "playbook_on_play_start", play="Deploy"),
        _event(2, "playbook_on_task_start", task="Check"),
        _event(3, "runner_on_ok", host="web1", task="Check"),
        _event(4, "runner_on_failed", host="web2", task="Check"),
        _event(5, "playbook_on_task_start", task="Install"),
        _event(6, "runner_on_ok", host="web2", task="Install"),
        _event(7, "runner_on_ok", host="web3", task="Install"),
    ]
    for event in events:
        sink.add(event)
    sink.flush()
    run.refresh_from_db()

    assert run.progress == progress_count(run.pk)
    progress = selectors.run_progress(run=run)
    assert (progress.tasks_done, progress.tasks_seen) == (1, 2)
    assert progress.current_task == "Install"
    assert (progress.hosts_ok, progress.hosts_failed) == (2, 1)
    assert (run.event_count, run.line_count) == (7, 7)


def test_a_batch_stored_again_does_not_count_twice(db):
    run = RunFactory()
    sink = EventSink(run.pk, flush_seconds=3600)
    sink.add(_event(1, "playbook_on_task_start", task="Check"))
    sink.add(_event(2, "runner_on_failed", host="web1"))
    batch = list(sink.buffer)
    sink.flush()
    sink.buffer = batch  # as if the connection dropped after the INSERT and it was retried
    sink.flush()
    run.refresh_from_db()

    assert run.progress["tasks"] == 1
    assert selectors.run_progress(run=run).hosts_failed == 1


def test_a_poll_with_nothing_new_reads_no_event_however_long_the_log(client, owner):
    small, small_log = _run(owner, 40)
    big, big_log = _run(owner, 20_000)

    polls = [
        _queries(client, f"/runs/{run.pk}/log/?after={log.counter}")
        for run, log in ((small, small_log), (big, big_log))
    ]

    assert len(polls[0]) == len(polls[1])
    assert not [sql for sql in polls[1] if EVENT_TABLE in sql]
    # It still shows what came: a poll from before the last event gets it.
    update = client.get(f"/runs/{big.pk}/log/?after={big_log.counter - 1}").content.decode()
    assert f'id="L{big.line_count}"' in update
    assert "<strong>0</strong> of 1 task done so far" in update


def test_a_poll_with_new_lines_and_the_page_cost_the_same_queries_whatever_the_log(
    client, owner, django_assert_max_num_queries
):
    small, small_log = _run(owner, 40)
    big, big_log = _run(owner, 20_000)

    for url in ("/runs/{pk}/", "/runs/{pk}/log/?after={before}"):
        counts = []
        for run, log in ((small, small_log), (big, big_log)):
            sql = _queries(client, url.format(pk=run.pk, before=log.counter - 5))
            # No count nor grouping over the run's events: the progress is on the run.
            assert not [q for q in sql if EVENT_TABLE in q and ("COUNT(" in q or "GROUP BY" in q)]
            counts.append(len(sql))
        assert counts[0] == counts[1], url
    with django_assert_max_num_queries(counts[1]):
        client.get(f"/runs/{big.pk}/log/?after={big_log.counter - 5}")


def test_the_poll_of_an_ended_run_reads_no_event(client, owner):
    run, log = _run(owner, 20_000, status=RunStatus.SUCCESSFUL)

    sql = _queries(client, f"/runs/{run.pk}/log/?after={log.counter}")

    assert not [q for q in sql if EVENT_TABLE in q]
    update = client.get(f"/runs/{run.pk}/log/?after={log.counter}").content.decode()
    assert "<strong>1</strong> of 1 task done<" in update
    assert "log-poller" not in update  # the page stops asking


def test_a_run_stored_before_the_progress_was_kept_is_counted_once(owner):
    run, _ = _run(owner, 10)
    Run.objects.filter(pk=run.pk).update(progress=None)
    run.refresh_from_db()

    first = selectors.run_progress(run=run)
    run.refresh_from_db()
    with CaptureQueriesContext(connection) as queries:
        again = selectors.run_progress(run=run)

    assert first == again
    assert (first.tasks_seen, first.current_task, first.hosts_failed) == (1, "Install", 1)
    assert len(queries) == 0


# --- the download -------------------------------------------------------------------------
PIECES = [
    "ok", " ", "\r\n", "\n", "\r", "\t", "\x1b[0;32m", "\x1b[0m", "\x1b[", "\x1b", "\x1b]0;t\x07",
    "\x1b]8;;http://x\x1b\\", "\x9b31m", "\x07", "\x00", "\u2028", "\u202e", "é", "\x1bP", "0",
    "\x1b(", "B", "[1m", "\x1b[1;31m",
]  # fmt: skip


def test_the_download_shows_each_line_as_plain_text_of_that_line_alone():
    rng = random.Random(19)
    for _ in range(20_000):
        stdout = "".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 12)))
        count = rng.randrange(0, 5)
        expected = [plain_text(line) for line in event_lines(stdout, count)]
        assert plain_lines(stdout, count) == expected, (stdout, count)


def test_many_outputs_at_once_are_plain_lines_of_each():
    rng = random.Random(1919)
    coloured = ('\x1b[0;32mok: [web1]\x1b[0m\r\n\x1b[0;32m\t"msg": "é"\x1b[0m', 2)
    for _ in range(3000):
        outputs = [coloured] * rng.randrange(0, 3)
        for _ in range(rng.randrange(0, 4)):
            stdout = "".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 8)))
            outputs.append((stdout, rng.randrange(-1, 5)))
        expected = [line for stdout, count in outputs for line in plain_lines(stdout, count)]
        stdouts, counts = zip(*outputs, strict=True) if outputs else ((), ())
        assert plain_lines_of(stdouts, counts) == expected, outputs


def _download_as_written(run) -> str:
    """The download rendered the straightforward way: each event, each of its lines."""
    out = []
    for event in run.events.order_by("counter"):
        stamp = ""
        if event.created:
            local = timezone.localtime(event.created)
            stamp = local.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        lines = event_lines(event.stdout, event.end_line - event.start_line)
        for number, text in enumerate(lines, event.start_line + 1):
            out.append(f"{number}\t{stamp}\t{plain_text(text)}\n")
    return "".join(out)


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kathmandu", "America/St_Johns"])
def test_the_download_is_each_line_rendered_on_its_own(run_with_log, zone, monkeypatch):
    run, log = run_with_log
    rng = random.Random(zone)
    stored = [piece for piece in PIECES if piece != "\x00"]  # PostgreSQL stores no NUL
    rows = []
    for _ in range(300):
        stdout = "".join(rng.choice(stored) for _ in range(rng.randrange(0, 10)))
        # Lines as ansible-runner numbers them, whatever the output holds: also more or
        # fewer than its line breaks.
        rows.append((stdout, stdout.count("\n") + rng.choice([1, 1, 1, 0, 2, -1])))
    at = datetime(2026, 3, 8, 5, 59, 58, tzinfo=UTC)
    events = []
    for n, (stdout, lines) in enumerate(rows, log.counter + 1):
        micro = rng.choice([0, 999, 1000, 999_999, 123_456])
        created = None if n % 50 == 7 else at + timedelta(seconds=n // 3, microseconds=micro)
        events.append(
            RunEvent(
                run=run,
                counter=n,
                event="verbose",
                stdout=stdout,
                created=created,
                start_line=log.line,
                end_line=log.line + max(lines, 0),
            )
        )
        log.line += max(lines, 0)
    events_store(run.pk, events)
    monkeypatch.setattr(selectors.log, "DOWNLOAD_EVENTS", 7)  # many pieces
    run.refresh_from_db()

    with timezone.override(zoneinfo.ZoneInfo(zone)):
        assert "".join(selectors.run_log_text(run=run)) == _download_as_written(run)


def test_the_download_holds_every_line_once_in_order(run_with_log):
    run, _ = run_with_log
    text = "".join(selectors.run_log_text(run=run)).splitlines()

    assert [int(line.split("\t")[0]) for line in text] == list(range(1, run.line_count + 1))
    assert text[2].split("\t")[2] == "fatal: [web2]"
    assert text[-1].endswith(f"\tline {run.line_count}")


def test_a_download_left_half_way_leaves_the_database_connection_usable(run_with_log, monkeypatch):
    """A reader who closes the download after its first piece: the rest is not sent
    (on PostgreSQL the stream is stopped), and the next query on the connection works."""
    run, _ = run_with_log
    monkeypatch.setattr(selectors.log, "DOWNLOAD_EVENTS", 2)
    pieces = selectors.run_log_text(run=run)
    first = next(pieces)
    pieces.close()

    assert first.startswith("1\t")
    assert Run.objects.get(pk=run.pk).line_count == run.line_count
    assert "".join(selectors.run_log_text(run=run)).startswith(first)


@pytest.mark.django_db
def test_a_poll_sends_only_the_lines_its_progress_counts():
    """The run is read, then a batch (a task's start) commits, then the poll reads the
    events: it must not send that task's line with the progress from before it, or the
    page would never learn the task started (polls with nothing new draw no progress)."""
    from apps.runs.selectors import run_log_after, run_progress
    from tests.factories import RunFactory
    from tests.runs.helpers import Log

    run = RunFactory(status=RunStatus.RUNNING)
    log = Log(run)
    log.add("playbook_on_play_start", "PLAY [Deploy] ***\n")
    as_read = type(run).objects.get(pk=run.pk)
    log.add("playbook_on_task_start", "TASK [Wait for the go file] ***\n", task="Wait")

    lines, last, _ = run_log_after(run=as_read, counter=0)

    assert [line.section for line in lines if line.section] == ["play"]
    assert last == 1 and run_progress(run=as_read).tasks_seen == 0
    fresh = type(run).objects.get(pk=run.pk)
    lines, last, _ = run_log_after(run=fresh, counter=last)
    assert [line.section for line in lines if line.section] == ["task"]
    assert last == 2 and run_progress(run=fresh).tasks_seen == 1


# --- the lines' HTML ----------------------------------------------------------------------
LINES_TEMPLATE = (
    '{% for line in lines %}<div class="line{% if line.failed %} failed{% endif %}'
    '{% if line.section %} head {{ line.section }}{% endif %}" id="L{{ line.number }}">'
    '<a class="ln" href="#L{{ line.number }}">{{ line.number }}</a>{% if line.stamp %}'
    '<time class="ts" datetime="{{ line.stamp }}" title="{{ line.stamp }}">{{ line.clock }}'
    '</time>{% else %}<span class="ts"></span>{% endif %}{% if line.section == "play" or '
    'line.section == "task" %}<button type="button" class="fold" aria-expanded="true" '
    'aria-label="Fold this {{ line.section }}"></button>{% endif %}<span class="txt">'
    '{{ line.html }}</span>{% if line.section %}<span class="dur"></span>{% endif %}</div>\n'
    "{% endfor %}\n"
)


def test_the_lines_html_is_what_the_template_loop_wrote(run_with_log):
    """The lines are written in Python (run_tags.log_lines): as the template loop over
    them, which took most of a poll's time, wrote them."""
    run, log = run_with_log
    log.add("playbook_on_play_start", "\r\nPLAY [Deploy <web>] ***", play="Deploy")
    log.add("playbook_on_task_start", "TASK [a & b] ***", task="a & b")
    log.add("runner_on_failed", f"{RED}fatal: [web2] \"x\" 'y'{RESET}", failed=True)
    log.add("playbook_on_stats", "PLAY RECAP ***")
    RunEvent.objects.filter(run=run, counter=log.counter).update(created=None)
    run.refresh_from_db()
    lines, _ = selectors.run_log_tail(run=run, lines=30)

    expected = Template(LINES_TEMPLATE).render(Context({"lines": lines}))
    assert render_to_string("runs/_lines.html", {"lines": lines}) == expected
    assert {"play", "task", "recap", ""} <= {line.section for line in lines}
    assert any(line.failed for line in lines) and any(not line.stamp for line in lines)
    assert render_to_string("runs/_lines.html", {"lines": []}) == "\n"


def _html_as_before(text: str) -> str:
    """ansi_to_html as it was written before it skipped work for printable text."""
    out, open_span, pos = [], False, 0
    for match in SEQUENCE.finditer(text):
        out.append(escape(text[pos : match.start()].translate(VISIBLE)))
        pos = match.end()
        sgr = SGR.fullmatch(match.group())
        if sgr is None:
            continue
        codes = (sgr.group(1) or "0").split(";")
        classes = [COLOURS.get(c, "bold") for c in codes if c in COLOURS or c == "1"]
        if open_span:
            out.append("</span>")
            open_span = False
        if classes:
            out.append(f'<span class="{" ".join(classes)}">')
            open_span = True
    out.append(escape(text[pos:].translate(VISIBLE)))
    return "".join(out) + ("</span>" if open_span else "")


def test_a_lines_html_is_as_before():
    rng = random.Random(2026)
    for _ in range(20_000):
        text = "".join(
            rng.choice([*PIECES, "<", "&", '"', "'", "\x1b[1;32;91m", "x"])
            for _ in range(rng.randrange(0, 10))
        )
        assert ansi_to_html(text) == _html_as_before(text), text
