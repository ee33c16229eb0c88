"""Idempotent launches: the same Idempotency-Key from the same user answers with the run it
created, never a second run, also when both requests arrive at once."""

import hashlib
import json
import threading
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.runs.constants import RunStatus
from apps.runs.models import LaunchKey, Run
from apps.runs.services import idempotency
from apps.runs.services import launch as launch_module
from tests.clients import api_client
from tests.runs.helpers import queue_held

KEY = "github-5531-deploy-step-3"


def _launch(client, key=KEY, **overrides):
    data = {
        "service": "hello-web",
        "action": "deploy",
        "environment": "test",
        "parameters": {"version": "1.2.3"},
        **overrides,
    }
    headers = {} if key is None else {"Idempotency-Key": key}
    return client.post(
        "/api/v1/runs/", json.dumps(data), content_type="application/json", headers=headers
    )


@pytest.fixture
def api(demo):
    return api_client(demo.dev)


@pytest.mark.django_db(transaction=True)  # its own transaction, not a test's savepoint
def test_a_launch_writes_its_key_its_run_and_its_audit_row_once_each(api, demo):
    api.get("/api/v1/catalog/")  # the token's first use noted (once a minute)
    forget = mock.patch.object(idempotency, "launch_keys_forget_expired_now_and_then")
    with queue_held(), forget, CaptureQueriesContext(connection) as queries:
        response = _launch(api)

    assert response.status_code == 201, response.content
    writes = [q["sql"].split(" (")[0].split(" SET ")[0] for q in queries
              if q["sql"].startswith(("INSERT", "UPDATE", "DELETE", "SAVEPOINT"))]  # fmt: skip
    # The key is taken with its run (no UPDATE after); the audit row needs no savepoint.
    assert writes == [
        'INSERT INTO "runs_run"',
        'DELETE FROM "runs_launchkey" WHERE',
        'INSERT INTO "runs_launchkey"',
        'INSERT INTO "audit_auditevent"',
        'UPDATE "audit_audithead"',
    ]
    assert LaunchKey.objects.get().run_id == response.json()["id"]


def test_a_launch_asked_again_answers_with_the_run_it_created(api, demo):
    with queue_held():
        first = _launch(api)
        again = _launch(api)

    assert first.status_code == 201, first.content
    assert again.status_code == 200, again.content
    assert again.json()["id"] == first.json()["id"]
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Run.objects.count() == 1
    assert AuditEvent.objects.filter(verb="run.requested").count() == 1


def test_asked_again_after_the_run_ended_it_answers_with_how_it_ended(api, demo):
    with queue_held():
        run_id = _launch(api).json()["id"]
    Run.objects.filter(pk=run_id).update(status=RunStatus.FAILED, rc=2)

    again = _launch(api)

    assert again.status_code == 200
    assert again.json()["status"] == "failed"
    assert Run.objects.count() == 1


def test_the_same_key_with_another_request_is_refused_naming_what_differs(api, demo):
    with queue_held():
        run_id = _launch(api).json()["id"]

    response = _launch(api, parameters={"version": "1.2.4"}, verify=False)

    assert response.status_code == 422
    body = response.json()
    assert f"run #{run_id}" in body["detail"]
    assert "differs in parameters" in body["detail"]
    assert body["errors"]["Idempotency-Key"] == [body["detail"]]
    assert Run.objects.count() == 1
    refusal = AuditEvent.objects.get(verb="run.refused")
    assert refusal.details["differs_in"] == ["parameters"]
    assert refusal.details["reason"] == body["detail"]
    assert refusal.via == "api"


def test_a_promotion_under_a_launchs_key_is_refused(api, demo, history):
    history.shipped("test", "1.0.0")
    with queue_held():
        assert _launch(api, environment="test", parameters={"version": "1.2.3"}).status_code == 201

    response = api.post(
        "/api/v1/services/hello-web/environments/qa/promote/",
        "{}",
        content_type="application/json",
        headers={"Idempotency-Key": KEY},
    )

    assert response.status_code == 422
    assert "request" in response.json()["detail"]


def test_a_key_belongs_to_its_user(api, demo):
    with queue_held():
        mine = _launch(api, check=True)
        theirs = _launch(api_client(demo.tester), check=True)

    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert theirs.json()["requested_by"] == "tester"


def test_an_expired_key_launches_anew(api, demo):
    with queue_held():
        first = _launch(api, check=True).json()["id"]
        LaunchKey.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
        second = _launch(api, check=True)

    assert second.status_code == 201
    assert second.json()["id"] != first
    (key,) = LaunchKey.objects.all()
    assert key.run_id == second.json()["id"]
    assert key.expires_at - key.created_at == timedelta(hours=24)


def test_keys_past_their_lifetime_are_forgotten(api, demo, monkeypatch):
    with queue_held():
        _launch(api, key="old-1", check=True)
        _launch(api, key="old-2", check=True)
        LaunchKey.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
        # This process's last pass over expired keys was long ago.
        monkeypatch.setattr(idempotency, "_forgotten_at", [float("-inf")])
        _launch(api, key="new", check=True)

    assert list(LaunchKey.objects.values_list("key_hash", flat=True)) == [
        hashlib.sha256(b"new").hexdigest()
    ]


def test_expired_keys_are_forgotten_once_in_a_while_not_after_every_launch(api, demo, monkeypatch):
    monkeypatch.setattr(idempotency, "_forgotten_at", [float("-inf")])
    with queue_held():
        _launch(api, key="old", check=True)  # a pass (nothing expired yet)
        LaunchKey.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
        _launch(api, key="new", check=True)  # within FORGET_EVERY_SECONDS: no pass

    assert LaunchKey.objects.count() == 2


def test_only_the_hash_of_a_key_is_kept(api, demo):
    with queue_held():
        _launch(api)

    stored = json.dumps(list(LaunchKey.objects.values()), default=str)
    assert KEY not in stored
    assert LaunchKey.objects.get().key_hash == hashlib.sha256(KEY.encode()).hexdigest()
    assert "1.2.3" not in stored  # the request is kept as keyed hashes only


@pytest.mark.parametrize("key", ["", "   ", "x" * 256, "clé", "tab\there"])
def test_a_malformed_key_is_refused(api, demo, key):
    response = _launch(api, key=key)

    assert response.status_code == 400
    assert response.json()["errors"]["Idempotency-Key"]
    assert not Run.objects.exists()


def test_a_refused_launch_keeps_no_key_so_asking_again_can_launch(api, demo):
    with queue_held():
        holder = _launch(api, key="someone-else", parameters={"version": "1.0.0"}).json()["id"]

        refused = _launch(api)
        assert refused.status_code == 409
        assert not LaunchKey.objects.filter(key_hash=hashlib.sha256(KEY.encode()).hexdigest())
        Run.objects.filter(pk=holder).update(status=RunStatus.SUCCESSFUL)
        again = _launch(api)

    assert again.status_code == 201
    assert Run.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_launch_that_never_reached_the_broker_forgets_its_key(api, demo):
    with mock.patch("apps.runs.services.lifecycle.task_send", side_effect=OSError("down")):
        failed = _launch(api)
    assert failed.status_code == 503
    assert not LaunchKey.objects.exists()

    with queue_held():
        again = _launch(api)

    assert again.status_code == 201
    assert again.json()["id"] != Run.objects.get(status=RunStatus.FAILED).pk


# --- two identical launches at once -----------------------------------------------------
def _at_once(user, requests: int = 2, **overrides) -> list:
    """Send identical keyed launches from `requests` threads, each past every check before
    any of them writes (a barrier after the checks), so they race for the insert."""
    barrier = threading.Barrier(requests, timeout=20)
    real_plan = launch_module.checks.plan
    answers: list = []

    def plan_then_wait(req):
        plan = real_plan(req)
        barrier.wait()
        return plan

    def send():
        try:
            answers.append(_launch(api_client(user), **overrides))
        finally:
            connection.close()

    with queue_held(), mock.patch.object(launch_module.checks, "plan", plan_then_wait):
        threads = [threading.Thread(target=send) for _ in range(requests)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    return answers


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("check", [False, True], ids=["deploy", "dry-run"])
def test_two_identical_launches_at_once_create_one_run(demo, check):
    answers = _at_once(demo.dev, check=check)

    assert sorted(a.status_code for a in answers) == [200, 201], [a.content for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert Run.objects.count() == 1
    assert LaunchKey.objects.get().run_id == answers[0].json()["id"]
    assert AuditEvent.objects.filter(verb="run.requested").count() == 1
    # The one that lost the race is not a refusal: it was answered with the run.
    assert not AuditEvent.objects.filter(verb="run.refused").exists()
