"""Writers at the same time never fork the chain (PostgreSQL, real connections)."""

import threading
from itertools import pairwise

import pytest
from django.db import connection, connections

from apps.audit.chain import GENESIS
from apps.audit.models import AuditEvent
from apps.audit.verification import audit_verify
from tests.audit.conftest import record

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="SQLite serializes every writer anyway"
    ),
]
WRITERS, ROWS_EACH = 6, 25


def test_parallel_writers_append_one_chain():
    start = threading.Barrier(WRITERS)
    errors = []

    def write(n: int) -> None:
        try:
            start.wait()
            for i in range(ROWS_EACH):
                record(verb="test.parallel", details={"writer": n, "i": i})
        except Exception as exc:  # reported below, with the others
            errors.append(exc)
        finally:
            connections.close_all()  # this thread's own connection

    threads = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors
    events = list(AuditEvent.objects.order_by("id"))
    assert len(events) == WRITERS * ROWS_EACH
    assert [e.id for e in events] == list(range(1, len(events) + 1))
    assert [e.prev_hash for e in events] == [GENESIS] + [e.hash for e in events[:-1]]
    # Writers really did interleave (each row names its writer).
    writers = [e.details["writer"] for e in events]
    assert sum(a != b for a, b in pairwise(writers)) > WRITERS
    assert audit_verify().ok
