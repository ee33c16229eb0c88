"""What only the database's owner can do to the audit log: switch its triggers off.

Used by the test flush between transactional tests (pytest-django empties every
table) and by the tests that tamper with the log to prove verify_audit notices.
The portal itself has no such code path.
"""

from contextlib import contextmanager

from django.db import connection as default_connection
from django.db import transaction

TABLE = "audit_auditevent"


@contextmanager
def audit_triggers_disabled(connection=default_connection):
    """Inside this block (one transaction) the append-only triggers do not fire.

    PostgreSQL: `session_replication_role = replica`, which only a superuser may
    set, for this transaction only. SQLite: the triggers are dropped and
    created again from their own SQL before the transaction commits.
    """
    with transaction.atomic(using=connection.alias):
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SET LOCAL session_replication_role = replica")
                yield
                return
            cursor.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s",
                [TABLE],
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


def flush_past_audit_triggers(execute_sql_flush):
    """Wrap DatabaseOperations.execute_sql_flush so the test flush may empty the audit log."""

    def wrapped(self, sql_list):
        with audit_triggers_disabled(self.connection):
            return execute_sql_flush(self, sql_list)

    return wrapped
