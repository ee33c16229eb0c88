# ruff: noqa: S608 (every statement here is built from this module's own constants)
"""PostgreSQL: row and statement triggers, and the event triggers that guard them."""

import hashlib

from apps.audit.chain import GENESIS
from apps.audit.triggers.tables import COLUMNS, REFUSED, TriggerError

_RAISE = "USING ERRCODE = 'integrity_constraint_violation'"
FUNCTIONS = {
    "audit_auditevent_refuse": f"""
BEGIN
    IF TG_LEVEL = 'ROW' THEN
        RAISE EXCEPTION '{REFUSED}: % of % #% refused.', TG_OP, TG_TABLE_NAME, OLD.id
            {_RAISE};
    END IF;
    RAISE EXCEPTION '{REFUSED}: % of % refused.', TG_OP, TG_TABLE_NAME {_RAISE};
END
""",
    # The head moves only as an append moves it: forward, onto the newest row.
    "audit_audithead_guard": f"""
DECLARE
    newest_id bigint;
    newest_hash text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION '{REFUSED}: DELETE of its head refused.' {_RAISE};
    END IF;
    SELECT id, hash INTO newest_id, newest_hash
        FROM {{schema}}.audit_auditevent ORDER BY id DESC LIMIT 1;
    IF NEW.id IS DISTINCT FROM 1
        OR NEW.last_id IS DISTINCT FROM coalesce(newest_id, 0)
        OR NEW.last_hash IS DISTINCT FROM coalesce(newest_hash, '{GENESIS}')
        OR (TG_OP = 'UPDATE' AND (NEW.id IS DISTINCT FROM OLD.id OR NEW.last_id <= OLD.last_id))
        OR (TG_OP = 'INSERT' AND EXISTS (SELECT 1 FROM {{schema}}.audit_audithead))
    THEN
        RAISE EXCEPTION '{REFUSED}: its head only moves forward, to the newest row (% refused).',
            TG_OP {_RAISE};
    END IF;
    RETURN NEW;
END
""",
}
_TYPE = {"ROW": 1, "BEFORE": 2, "INSERT": 4, "DELETE": 8, "UPDATE": 16, "TRUNCATE": 32}
# name, table, events, level, function
TRIGGERS = [
    ("audit_auditevent_append_only", "audit_auditevent", "UPDATE OR DELETE", "ROW",
     "audit_auditevent_refuse"),
    ("audit_auditevent_no_truncate", "audit_auditevent", "TRUNCATE", "STATEMENT",
     "audit_auditevent_refuse"),
    ("audit_audithead_only_forward", "audit_audithead", "INSERT OR UPDATE OR DELETE", "ROW",
     "audit_audithead_guard"),
    ("audit_audithead_no_truncate", "audit_audithead", "TRUNCATE", "STATEMENT",
     "audit_auditevent_refuse"),
    ("audit_auditcheckpoint_append_only", "audit_auditcheckpoint", "UPDATE OR DELETE", "ROW",
     "audit_auditevent_refuse"),
    ("audit_auditcheckpoint_no_truncate", "audit_auditcheckpoint", "TRUNCATE", "STATEMENT",
     "audit_auditevent_refuse"),
]  # fmt: skip
GUARD_SCHEMA = "pushbutton_audit_guard"
EVENT_TRIGGERS = {
    "audit_guard_before": "ddl_command_start",
    "audit_guard_after": "ddl_command_end",
    "audit_guard_rewrite": "table_rewrite",
}


def _tgtype(events: str, level: str) -> int:
    bits = _TYPE["BEFORE"] | (_TYPE["ROW"] if level == "ROW" else 0)
    return bits | sum(_TYPE[event] for event in events.split(" OR "))


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _body(name: str, schema: str) -> str:
    return FUNCTIONS[name].replace("{schema}", schema)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _values(rows) -> str:
    return ", ".join("(" + ", ".join(map(str, row)) + ")" for row in rows)


def problems_sql(schema: str, quoted: str) -> str:
    """One query whose rows (kind, name, problem) say what is missing or altered."""
    namespace = f"(SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = {_literal(schema)})"
    tables = _values((_literal(t),) for t in COLUMNS)
    columns = _values((_literal(t), _literal(c)) for t, cs in COLUMNS.items() for c in cs)
    functions = _values((_literal(f), _literal(_digest(_body(f, quoted)))) for f in FUNCTIONS)
    triggers = _values(
        (_literal(n), _literal(t), _tgtype(e, level), _literal(f)) for n, t, e, level, f in TRIGGERS
    )
    return f"""
SELECT 'table', e.t, 'table ' || e.t || ' is missing' FROM (VALUES {tables}) AS e(t)
WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.relnamespace = {namespace}
                  AND c.relname = e.t AND c.relkind IN ('r', 'p'))
UNION ALL
SELECT 'column', e.t || '.' || e.c, 'column ' || e.t || '.' || e.c || ' is missing'
FROM (VALUES {columns}) AS e(t, c)
JOIN pg_catalog.pg_class c ON c.relnamespace = {namespace} AND c.relname = e.t
                           AND c.relkind IN ('r', 'p')
WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid
                  AND a.attname = e.c AND NOT a.attisdropped)
UNION ALL
SELECT 'function', e.f, 'function ' || e.f || '() '
       || CASE WHEN p.oid IS NULL THEN 'is missing' ELSE 'was altered' END
FROM (VALUES {functions}) AS e(f, digest)
LEFT JOIN pg_catalog.pg_proc p ON p.pronamespace = {namespace} AND p.proname = e.f
                               AND p.pronargs = 0
WHERE p.oid IS NULL
   OR encode(pg_catalog.sha256(pg_catalog.convert_to(p.prosrc, 'UTF8')), 'hex') <> e.digest
UNION ALL
SELECT 'trigger', e.n, 'trigger ' || e.n || ' on ' || e.t || CASE
       WHEN g.oid IS NULL THEN ' is missing'
       WHEN g.tgenabled NOT IN ('O', 'A') THEN ' is disabled'
       ELSE ' was altered' END
FROM (VALUES {triggers}) AS e(n, t, type, f)
LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = {namespace} AND c.relname = e.t
                                AND c.relkind IN ('r', 'p')
LEFT JOIN pg_catalog.pg_trigger g ON g.tgrelid = c.oid AND g.tgname = e.n
LEFT JOIN pg_catalog.pg_proc p ON p.oid = g.tgfoid
WHERE g.oid IS NULL OR g.tgenabled NOT IN ('O', 'A') OR g.tgtype <> e.type
   OR p.proname <> e.f OR p.pronamespace <> {namespace}
"""


def _guard_sql(schema: str, quoted: str) -> list[str]:
    """The event triggers' functions: the state before each schema change is kept for
    the transaction, and a change that breaks a whole is refused. They live in a schema
    of the superuser's, since whoever owns a schema may drop any function in it."""
    head = "LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $body$"
    guard = GUARD_SCHEMA
    audit_tables = ", ".join(f"to_regclass({_literal(f'{quoted}.{t}')})" for t in COLUMNS)
    return [
        f"CREATE SCHEMA IF NOT EXISTS {guard}",
        f"GRANT USAGE ON SCHEMA {guard} TO PUBLIC",
        f"CREATE OR REPLACE FUNCTION {guard}.audit_guard_problems() RETURNS text LANGUAGE sql "
        "STABLE SET search_path = pg_catalog, pg_temp AS $body$ "
        "SELECT coalesce(string_agg(problem, '; ' ORDER BY problem), '') "
        f"FROM ({problems_sql(schema, quoted)}) AS found(kind, name, problem) $body$",
        f"CREATE OR REPLACE FUNCTION {guard}.audit_guard_before() RETURNS event_trigger {head}"
        f" BEGIN PERFORM set_config('pushbutton.audit_guard', {guard}.audit_guard_problems(),"
        " true); END $body$",
        f"CREATE OR REPLACE FUNCTION {guard}.audit_guard_after() RETURNS event_trigger {head}"
        f" DECLARE problems text := {guard}.audit_guard_problems(); BEGIN"
        " IF problems <> '' AND coalesce(current_setting('pushbutton.audit_guard', true), '')"
        f" = '' THEN RAISE EXCEPTION '{REFUSED}: % refused (%).', TG_TAG, problems {_RAISE};"
        " END IF; END $body$",
        f"CREATE OR REPLACE FUNCTION {guard}.audit_guard_rewrite() RETURNS event_trigger {head}"
        f" BEGIN IF pg_event_trigger_table_rewrite_oid() IN ({audit_tables}) THEN"
        f" RAISE EXCEPTION '{REFUSED}: % would rewrite %, refused.', TG_TAG,"
        f" pg_event_trigger_table_rewrite_oid()::regclass {_RAISE}; END IF; END $body$",
    ]


def _install_guard(cursor, schema: str, quoted: str) -> list[str]:
    cursor.execute(
        "SELECT r.rolsuper FROM pg_catalog.pg_namespace n "
        "JOIN pg_catalog.pg_roles r ON r.oid = n.nspowner WHERE n.nspname = %s",
        [GUARD_SCHEMA],
    )
    owner = cursor.fetchone()
    if owner is not None and not owner[0]:
        raise TriggerError(
            f"The schema {GUARD_SCHEMA} belongs to a role that is not a superuser, who could "
            "drop the event triggers' functions: drop it, then install again."
        )
    for sql in _guard_sql(schema, quoted):
        cursor.execute(sql)
    cursor.execute("SELECT evtname FROM pg_catalog.pg_event_trigger")
    present = {name for (name,) in cursor.fetchall()}
    done = []
    for name, event in EVENT_TRIGGERS.items():
        if name not in present:
            cursor.execute(
                f"CREATE EVENT TRIGGER {name} ON {event} EXECUTE FUNCTION {GUARD_SCHEMA}.{name}()"
            )
            done.append(f"Installed event trigger {name}.")
    return done


def _schema(cursor) -> tuple[str, str]:
    cursor.execute("SELECT current_schema()")
    schema = cursor.fetchone()[0]
    return schema, '"' + schema.replace('"', '""') + '"'


def install(cursor, problems: set[tuple[str, str]]) -> list[str]:
    """Create again each function and trigger among `problems` ((kind, name) pairs), then,
    as a superuser, the event triggers."""
    schema, quoted = _schema(cursor)
    done = []
    for name in FUNCTIONS:
        if ("function", name) in problems:
            cursor.execute(
                f"CREATE OR REPLACE FUNCTION {quoted}.{name}() RETURNS trigger LANGUAGE plpgsql "
                f"SET search_path = pg_catalog, pg_temp AS $body${_body(name, quoted)}$body$"
            )
            done.append(f"Installed function {name}().")
    for name, table, events, level, function in TRIGGERS:
        if ("trigger", name) in problems:
            cursor.execute(f"DROP TRIGGER IF EXISTS {name} ON {quoted}.{table}")
            cursor.execute(
                f"CREATE TRIGGER {name} BEFORE {events} ON {quoted}.{table} "
                f"FOR EACH {level} EXECUTE FUNCTION {quoted}.{function}()"
            )
            done.append(f"Installed trigger {name}.")
    cursor.execute("SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user")
    if not cursor.fetchone()[0]:
        return done  # only a superuser may create event triggers: event_trigger_notes() says so
    return done + _install_guard(cursor, schema, quoted)


def problems(cursor) -> list[tuple[str, str, str]]:
    """(kind, name, message) of each table, column, function or trigger missing or altered."""
    cursor.execute(problems_sql(*_schema(cursor)))
    return cursor.fetchall()


def event_trigger_notes(cursor) -> list[str]:
    """A note for each event trigger that is missing, disabled, or whose function is in a
    schema that is not a superuser's."""
    cursor.execute(
        "SELECT e.evtname FROM pg_catalog.pg_event_trigger e "
        "JOIN pg_catalog.pg_proc p ON p.oid = e.evtfoid "
        "JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace "
        "JOIN pg_catalog.pg_roles r ON r.oid = n.nspowner "
        "WHERE e.evtenabled <> 'D' AND n.nspname = %s AND r.rolsuper",
        [GUARD_SCHEMA],
    )
    present = {name for (name,) in cursor.fetchall()}
    return [
        f"The event trigger {name} is missing or disabled: the audit tables' owner could "
        "drop or alter their triggers (verify_audit would fail then). A superuser creates "
        "it with `manage.py audit_triggers --install`."
        for name in EVENT_TRIGGERS
        if name not in present
    ]
