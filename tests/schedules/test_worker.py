"""Firings for real: a run launched by a schedule goes through the real worker; two firing
passes at once (two beats, or a slow pass overlapping the next) fire each due time once.
The second is about the database's row locks: run it on PostgreSQL too (DATABASE_URL)."""

import threading
import time
from unittest import mock

import pytest
from django.db import connection

from apps.runs.constants import RunStatus
from apps.runs.services import checks
from apps.schedules import services
from apps.schedules.constants import Outcome
from apps.schedules.models import Firing
from tests.clients import api_client, page_client
from tests.factories import ActionFactory
from tests.runs.helpers import queue_held, wait_final
from tests.schedules.helpers import SECOND, fire_when_due, schedule_make

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.worker
def test_a_scheduled_run_runs_for_real_and_says_it_was_scheduled(
    celery_worker, test_playbooks, local_env, dev
):
    action = ActionFactory(
        playbook_version=test_playbooks["echo"],
        environments=[local_env],
        form=[{"name": "message", "type": "string"}],
    )
    schedule = schedule_make(
        dev, action, local_env, name="Nightly echo", parameters={"message": "from the clock"}
    )

    [firing] = fire_when_due(schedule)
    run = wait_final(firing.run)

    assert run.status == RunStatus.SUCCESSFUL, run.error
    assert run.requested_by == dev
    assert run.events.filter(stdout__contains="message=from the clock").exists()
    page = page_client(dev).get(run.get_absolute_url()).text
    assert "Scheduled by" in page and ">Nightly echo</a>" in page
    answer = api_client(dev).get(f"/api/v1/runs/{run.pk}/").json()
    assert answer["scheduled_by"]["id"] == schedule.pk
    assert answer["scheduled_by"]["name"] == "Nightly echo"
    assert answer["requested_by"] == "dev"


def test_two_firing_passes_at_once_fire_each_due_time_once(local_env, dev):
    schedules = [
        schedule_make(dev, ActionFactory(environments=[local_env]), local_env) for _ in range(3)
    ]
    now = max(s.next_due_at for s in schedules) + SECOND
    passes = 2
    barrier = threading.Barrier(passes, timeout=20)
    real_plan = checks.plan
    errors: list = []

    def slow_plan(req):
        # Each launch takes a while, so the passes overlap while one holds a schedule.
        time.sleep(0.3)
        return real_plan(req)

    def firing_pass():
        try:
            barrier.wait()
            services.schedules_fire_due(now=now)
        except Exception as exc:  # shown by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    with queue_held(), mock.patch.object(checks, "plan", slow_plan):
        threads = [threading.Thread(target=firing_pass) for _ in range(passes)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

    assert errors == []
    firings = list(Firing.objects.order_by("schedule_id"))
    assert [f.schedule_id for f in firings] == [s.pk for s in schedules]
    assert {f.outcome for f in firings} == {Outcome.FIRED}
    assert len({f.run_id for f in firings}) == 3
