"""Each row hashes its canonical content and the previous row's hash, recomputably."""

import hashlib
import json
from datetime import UTC, datetime
from unittest import mock

import pytest
from django.db import connection

from apps.audit.chain import GENESIS, details_text
from apps.audit.models import AuditEvent, AuditHead
from apps.audit.services import audit_event_hash
from apps.audit.verification import _database_rows, chain_check
from tests.audit.conftest import record, rows

pytestmark = pytest.mark.django_db

ODD_DETAILS = {
    "text": 'é ü 漢字 \x00 nul, \ud800 lone surrogate, "quotes" and \\ backslash',
    "numbers": [1, 1.0, 0.1, 1.5e-7, 1e20, -0.0, 2**70, float("inf")],
    "nested": {"b": {"z": 1, "a": [True, False, None]}, "a": {}, 3: "int key"},
    "a tuple": (1, 2),
    "a set": {"b", "a"},
    "when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
}


def test_it_chains_rows_with_sequence_numbers_without_gaps():
    first, second, third = record(), record(), record()

    assert [second.id, third.id] == [first.id + 1, first.id + 2]
    assert second.prev_hash == first.hash and third.prev_hash == second.hash
    assert AuditHead.objects.get().last_id == third.id
    assert AuditHead.objects.get().last_hash == third.hash


def test_the_first_row_chains_to_zeros():
    assert record().prev_hash == GENESIS


@pytest.mark.parametrize(
    "ip", ["10.1.2.3", "::ffff:10.1.2.3", "2001:DB8:0:0:1:0:0:1", "fe80::1%eth0", "nonsense"]
)
def test_it_recomputes_each_hash_from_what_the_database_returns(ip, rf):
    request = rf.get("/", REMOTE_ADDR=ip, HTTP_USER_AGENT="Mozilla/5.0 " + "x" * 400)
    written = record(
        details=ODD_DETAILS,
        request=request,
        object_repr="r" * 500,
        actor_name="",
        service="a-service",
    )

    stored = AuditEvent.objects.get(pk=written.pk)

    assert audit_event_hash(stored) == stored.hash == written.hash
    assert stored.details == written.details
    assert len(stored.object_repr) == 200 and len(stored.user_agent) == 300
    # ...and so does the fast path verify_audit takes, reading raw rows.
    assert chain_check(_database_rows(after=written.pk - 1), start_sequence=written.pk,
                       start_prev_hash=written.prev_hash).ok  # fmt: skip


def test_it_keeps_details_as_json_that_survives_the_round_trip():
    stored = AuditEvent.objects.get(pk=record(details=ODD_DETAILS).pk)

    assert stored.details["numbers"] == [1, 1, 0.1, 1.5e-7, 10**20, 0, 2**70, "inf"]
    assert stored.details["nested"] == {
        "a": {},
        "b": {"a": [True, False, None], "z": 1},
        "3": "int key",
    }
    assert stored.details["a set"] == ["a", "b"]
    assert stored.details["when"] == "2026-01-02T03:04:05.000000Z"
    assert "\x00" not in stored.details["text"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT details FROM audit_auditevent WHERE id = %s", [stored.pk])
        [(text,)] = cursor.fetchall()
    assert text == details_text(stored.details)  # exactly what the hash covers


def test_it_hashes_a_time_without_fraction_the_same_after_reading_it_back():
    whole_second = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    with mock.patch("apps.audit.services.timezone.now", return_value=whole_second):
        written = record()

    stored = AuditEvent.objects.get(pk=written.pk)

    assert stored.created_at == whole_second
    assert audit_event_hash(stored) == stored.hash
    assert chain_check(_database_rows(after=written.pk - 1), start_sequence=written.pk,
                       start_prev_hash=written.prev_hash).ok  # fmt: skip


def test_the_hash_is_what_the_documentation_says():
    """Recomputed from chain.py's description alone, as an outside verifier would."""
    event = AuditEvent.objects.get(pk=record(details={"b": 1, "a": "é"}, service="shop").pk)

    details = json.dumps(event.details, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    content = [
        event.id,
        event.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        event.actor_id, event.actor_name, event.via, event.ip, event.user_agent, event.verb,
        event.object_type, event.object_id, event.object_repr, event.service,
        event.environment, hashlib.sha256(details.encode()).hexdigest(), event.outcome,
        event.prev_hash,
    ]  # fmt: skip
    text = json.dumps(content, separators=(",", ":"), ensure_ascii=True)

    assert hashlib.sha256(text.encode()).hexdigest() == event.hash


def test_a_changed_value_changes_the_hash():
    event = AuditEvent.objects.get(pk=record(service="shop").pk)

    event.service = "shop2"

    assert audit_event_hash(event) != event.hash


@pytest.mark.parametrize(
    "details",
    [
        {"password": "hunter2"},
        {"parameters": {"db_password": "hunter2"}},
        {"errors": {"api_key": ["hunter2 is not valid"]}},
        {"inventory": {"all": {"vars": {"ansible_become_pass": "hunter2"}}}},
        {"private_key": "-----BEGIN hunter2"},
        {"list": [{"token": "hunter2"}]},
    ],
)
def test_it_never_keeps_a_value_under_a_secret_name(details):
    record(details=details)

    assert "hunter2" not in json.dumps([row.details for row in rows()])


def test_flags_about_a_secret_are_kept():
    event = record(details={"secret_changed": True, "password": "", "token": "••••"})

    assert event.details == {"secret_changed": True, "password": "", "token": "••••"}
