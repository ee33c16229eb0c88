"""The database's side of the append-only promise: triggers on the audit tables.

Both databases refuse, with an integrity error that starts "The audit log is
append-only", every statement that would change or remove a row of the log
(audit_auditevent) or a checkpoint (audit_auditcheckpoint), and every change of
the chain's head (audit_audithead) but the one an append makes: forward, to the
newest row.

- SQLite: BEFORE UPDATE, DELETE and INSERT triggers. The INSERT ones refuse a
  row whose id or hash is taken, because REPLACE (INSERT OR REPLACE, REPLACE
  INTO) deletes the row in its way without firing DELETE triggers. SQLite has
  no hook on schema changes: whoever can write the file can drop a trigger,
  which `triggers_problems()` (and so verify_audit) then reports.
- PostgreSQL: row triggers for INSERT (the head), UPDATE and DELETE, statement
  triggers for TRUNCATE. Event triggers, which only a superuser may create,
  refuse any schema change that leaves a table, a column the chain hashes, a
  trigger or a trigger's function missing, disabled or altered (dropping,
  disabling, renaming, replacing), and any rewrite of the tables
  (ALTER ... TYPE ... USING). A change made while something is already missing
  passes, so a repair can be made one statement at a time.

`triggers_install()` creates what is missing or altered and leaves the rest alone. A
migration that remakes an audit table (SQLite remakes a table for most field changes,
dropping its triggers) calls it afterwards.
"""

from django.db import connection as default_connection

from apps.audit.triggers import postgresql, sqlite
from apps.audit.triggers.tables import KINDS, Missing, TriggerError

__all__ = [
    "Missing",
    "TriggerError",
    "event_trigger_notes",
    "triggers_install",
    "triggers_problems",
]


def _problems(cursor, vendor: str) -> list[Missing]:
    if vendor == "postgresql":
        found = postgresql.problems(cursor)
    elif vendor == "sqlite":
        found = sqlite.problems(cursor)
    else:
        raise TriggerError(f"No append-only triggers for {vendor}: the audit log needs them.")
    return sorted(
        (Missing(*problem) for problem in found), key=lambda p: (KINDS.index(p.kind), p.name)
    )


def triggers_problems(connection=default_connection) -> list[Missing]:
    """What of the append-only protection is missing or altered: tables, the columns the
    chain hashes, triggers' functions, triggers, in that order. Empty when it is whole."""
    with connection.cursor() as cursor:
        return _problems(cursor, connection.vendor)


def event_trigger_notes(connection=default_connection) -> list[str]:
    """What is missing of PostgreSQL's event triggers (nothing to say on SQLite)."""
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        return postgresql.event_trigger_notes(cursor)


def triggers_install(connection=default_connection) -> list[str]:
    """Create every trigger and function that is missing or altered, leaving the rest as
    it is; on PostgreSQL, as a superuser, the event triggers too. Returns what was done."""
    with connection.cursor() as cursor:
        found = _problems(cursor, connection.vendor)
        broken = [str(problem) for problem in found if problem.damages_the_log]
        if broken:
            raise TriggerError(
                "The audit tables are damaged (" + "; ".join(broken) + "): restore them from a "
                "backup; triggers cannot repair them."
            )
        problems = {(problem.kind, problem.name) for problem in found}
        if connection.vendor == "postgresql":
            return postgresql.install(cursor, problems)
        return sqlite.install(cursor, problems)
