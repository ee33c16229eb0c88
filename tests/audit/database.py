"""What only the database's owner can do to the audit log: switch its triggers off.

Used by the test flush between transactional tests (pytest-django empties every
table) and by the tests that tamper with the log to prove verify_audit notices.
The portal itself has no such code path.
"""

import time
from contextlib import contextmanager

from django.db import OperationalError, transaction
from django.db import connection as default_connection

from apps.audit.models import AuditEvent
from apps.audit.services import audit_event_hash

# The tables whose triggers refuse changes: the log, its head and the checkpoints.
TABLES = ("audit_auditevent", "audit_audithead", "audit_auditcheckpoint")
# What the migrations install, by name: what `verify_audit` requires.
TRIGGERS = {
    "postgresql": {
        "audit_auditevent_append_only", "audit_auditevent_no_truncate",
        "audit_audithead_only_forward", "audit_audithead_no_truncate",
        "audit_auditcheckpoint_append_only", "audit_auditcheckpoint_no_truncate",
    },
    "sqlite": {
        "audit_auditevent_no_update", "audit_auditevent_no_delete", "audit_auditevent_no_replace",
        "audit_audithead_only_forward", "audit_audithead_no_delete", "audit_audithead_no_replace",
        "audit_auditcheckpoint_no_update", "audit_auditcheckpoint_no_delete",
        "audit_auditcheckpoint_no_replace",
    },
}  # fmt: skip


@contextmanager
def audit_triggers_disabled(connection=default_connection):
    """Inside this block (one transaction) the append-only triggers do not fire.

    PostgreSQL: `session_replication_role = replica`, which only a superuser may
    set, for this transaction only (event triggers do not fire either). SQLite:
    the triggers are dropped and created again from their own SQL before the
    transaction commits.
    """
    with transaction.atomic(using=connection.alias):
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SET LOCAL session_replication_role = replica")
                yield
                return
            placeholders = ", ".join(["%s"] * len(TABLES))
            cursor.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "  # noqa: S608
                f"AND tbl_name IN ({placeholders})",
                list(TABLES),
            )
            triggers = cursor.fetchall()
            for name, _ in triggers:
                cursor.execute(f'DROP TRIGGER "{name}"')
        yield
        with connection.cursor() as cursor:
            for _, sql in triggers:
                cursor.execute(sql)


def tamper(sql: str, params=None, connection=default_connection) -> None:
    """Run `sql` on the audit log behind the triggers' back, as a database owner could."""
    with audit_triggers_disabled(connection), connection.cursor() as cursor:
        cursor.execute(sql, params or [])


def owner_ddl(sql: str, connection=default_connection) -> None:
    """A schema change as whoever owns the database makes it: on PostgreSQL behind the
    event trigger's back (a superuser's replica role); on SQLite nothing stands in the way."""
    if connection.vendor == "postgresql":
        tamper(sql, connection=connection)
        return
    with connection.cursor() as cursor:
        cursor.execute(sql)


def chain_rewrite(first_id: int, *, service: str = "changed") -> str:
    """What whoever owns the database can do without a checkpoint in the way: change row
    `first_id`, hash it and every row after it again, and move the head to the new last
    hash. Returns that hash."""
    previous = AuditEvent.objects.filter(id__lt=first_id).order_by("-id").first()
    prev = previous.hash if previous else "0" * 64
    tamper("UPDATE audit_auditevent SET service = %s WHERE id = %s", [service, first_id])
    for event in AuditEvent.objects.filter(id__gte=first_id).order_by("id"):
        event.prev_hash = prev
        event.hash = audit_event_hash(event)
        tamper(
            "UPDATE audit_auditevent SET prev_hash = %s, hash = %s WHERE id = %s",
            [event.prev_hash, event.hash, event.id],
        )
        prev = event.hash
    tamper("UPDATE audit_audithead SET last_hash = %s", [prev])
    return prev


# How often the flush is tried when PostgreSQL chose it as a deadlock's victim.
FLUSH_ATTEMPTS = 5


def flush_past_audit_triggers(execute_sql_flush):
    """Wrap DatabaseOperations.execute_sql_flush so the test flush may empty the audit log.

    On PostgreSQL the TRUNCATE takes its tables' locks one after the other while the
    session's worker may still be finishing a run's follow-ups (a notification, the
    deploy queue moving on) in a transaction of its own: when the two wait on each other,
    PostgreSQL ends one, and when that is the flush, the next test would start on the
    last one's rows. The flush is all or nothing, so it is tried again."""

    def wrapped(self, sql_list):
        for attempt in range(1, FLUSH_ATTEMPTS + 1):
            try:
                with audit_triggers_disabled(self.connection):
                    return execute_sql_flush(self, sql_list)
            except OperationalError as exc:
                if attempt == FLUSH_ATTEMPTS or not _deadlock(exc):
                    raise
                time.sleep(0.2 * attempt)

    return wrapped


def _deadlock(exc: OperationalError) -> bool:
    cause = exc.__cause__
    return getattr(cause, "sqlstate", None) == "40P01"  # deadlock_detected
