# ruff: noqa: S608 (every statement here is built from this module's own constants)
"""SQLite: BEFORE triggers, checked by comparing their SQL with what is installed here."""

from apps.audit.chain import GENESIS
from apps.audit.triggers.tables import COLUMNS, REFUSED


def _trigger(table: str, name: str, event: str, message: str, when: str = "") -> tuple:
    when = f" WHEN {when}" if when else ""
    sql = (
        f"CREATE TRIGGER {name} BEFORE {event} ON {table}{when} "
        f"BEGIN SELECT RAISE(ABORT, '{REFUSED}: {message}'); END"
    )
    return name, table, sql


_TAKEN = "EXISTS (SELECT 1 FROM {table} WHERE id = NEW.id)"
_AT_NEWEST = (
    "NEW.last_id IS coalesce((SELECT max(id) FROM audit_auditevent), 0) AND NEW.last_hash IS "
    f"coalesce((SELECT hash FROM audit_auditevent ORDER BY id DESC LIMIT 1), '{GENESIS}')"
)
_FORWARD = "NEW.id IS OLD.id AND NEW.last_id > OLD.last_id"
SQLITE = [
    # The first two as migration 0003 made them.
    _trigger("audit_auditevent", "audit_auditevent_no_update", "UPDATE", "UPDATE refused."),
    _trigger("audit_auditevent", "audit_auditevent_no_delete", "DELETE", "DELETE refused."),
    _trigger(
        "audit_auditevent", "audit_auditevent_no_replace", "INSERT",
        "INSERT OR REPLACE of a row refused.",
        when=_TAKEN.format(table="audit_auditevent")
        + " OR EXISTS (SELECT 1 FROM audit_auditevent WHERE hash = NEW.hash)",
    ),
    _trigger(
        "audit_audithead", "audit_audithead_only_forward", "UPDATE",
        "its head only moves forward, to the newest row (UPDATE refused).",
        when=f"NOT coalesce({_FORWARD} AND {_AT_NEWEST}, 0)",
    ),
    _trigger(
        "audit_audithead", "audit_audithead_no_delete", "DELETE", "DELETE of its head refused."
    ),
    _trigger(
        "audit_audithead", "audit_audithead_no_replace", "INSERT",
        "its head is one row, made at the newest row (INSERT refused).",
        when=f"NEW.id IS NOT 1 OR EXISTS (SELECT 1 FROM audit_audithead) OR NOT ({_AT_NEWEST})",
    ),
    _trigger(
        "audit_auditcheckpoint", "audit_auditcheckpoint_no_update", "UPDATE",
        "UPDATE of a checkpoint refused.",
    ),
    _trigger(
        "audit_auditcheckpoint", "audit_auditcheckpoint_no_delete", "DELETE",
        "DELETE of a checkpoint refused.",
    ),
    _trigger(
        "audit_auditcheckpoint", "audit_auditcheckpoint_no_replace", "INSERT",
        "INSERT OR REPLACE of a checkpoint refused.",
        when=_TAKEN.format(table="audit_auditcheckpoint"),
    ),
]  # fmt: skip


def _normal(sql: str) -> str:
    return " ".join(sql.split())


def problems(cursor) -> list[tuple[str, str, str]]:
    """(kind, name, message) of each table, column or trigger missing or altered."""
    cursor.execute("SELECT type, name, tbl_name, sql FROM sqlite_master")
    found = {(kind, name): (table, sql) for kind, name, table, sql in cursor.fetchall()}
    missing = []
    for table, columns in COLUMNS.items():
        if ("table", table) not in found:
            missing.append(("table", table, f"table {table} is missing"))
            continue
        cursor.execute("SELECT name FROM pragma_table_info(%s)", [table])
        present = {name for (name,) in cursor.fetchall()}
        missing += [
            ("column", f"{table}.{c}", f"column {table}.{c} is missing")
            for c in columns
            if c not in present
        ]
    for name, table, sql in SQLITE:
        table_found, sql_found = found.get(("trigger", name), (None, None))
        if sql_found is None:
            missing.append(("trigger", name, f"trigger {name} on {table} is missing"))
        elif table_found != table or _normal(sql_found) != _normal(sql):
            missing.append(("trigger", name, f"trigger {name} on {table} was altered"))
    return missing


def install(cursor, problems: set[tuple[str, str]]) -> list[str]:
    """Create again each trigger among `problems` ((kind, name) pairs)."""
    done = []
    for name, _table, sql in SQLITE:
        if ("trigger", name) in problems:
            cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
            cursor.execute(sql)
            done.append(f"Installed trigger {name}.")
    return done
