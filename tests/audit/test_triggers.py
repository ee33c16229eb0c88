# ruff: noqa: S608 (the statements an attacker would type, built from this file's constants)
"""The database refuses every statement that would change or remove a row of the audit log,
move its head anywhere but forward to the newest row, or change a checkpoint (both
databases); on PostgreSQL it also refuses the schema changes that would switch that off."""

import sqlite3
from contextlib import closing

import psycopg
import pytest
from django.db import IntegrityError, connection, transaction

from apps.audit.checkpoints import audit_checkpoint_create, key_generate
from apps.audit.models import AuditCheckpoint, AuditEvent, AuditHead
from apps.audit.triggers import triggers_problems
from tests.audit.conftest import record
from tests.audit.database import TRIGGERS

pytestmark = pytest.mark.django_db
REFUSED = "The audit log is append-only"
POSTGRESQL = connection.vendor == "postgresql"
COLUMNS = (
    "id, created_at, actor_id, actor_name, via, ip, user_agent, verb, object_type, object_id, "
    "object_repr, service, environment, details, outcome, prev_hash, hash"
)
FORGED = COLUMNS.replace(" service,", " 'forged',")
CHECKPOINT = "id, sequence, hash, signed_at, key_id, signature, published_to, publish_errors"
NEWEST = "(SELECT hash FROM audit_auditevent WHERE id = {row})"

# Statements both databases understand. {row} is a row in the middle of the log.
STATEMENTS = {
    "update a row": "UPDATE audit_auditevent SET service = 'forged' WHERE id = {row}",
    "update every row": "UPDATE audit_auditevent SET verb = 'forged'",
    "delete a row": "DELETE FROM audit_auditevent WHERE id = {row}",
    "delete every row": "DELETE FROM audit_auditevent",
    "upsert a row": f"INSERT INTO audit_auditevent ({COLUMNS}) SELECT {COLUMNS} "
    "FROM audit_auditevent WHERE id = {row} ON CONFLICT (id) DO UPDATE SET service = 'forged'",
    "move the head back": f"UPDATE audit_audithead SET last_id = {{row}}, last_hash = {NEWEST}",
    "point the head at a forged hash": f"UPDATE audit_audithead SET last_hash = '{'f' * 64}'",
    "delete the head": "DELETE FROM audit_audithead",
    "upsert the head": "INSERT INTO audit_audithead (id, last_id, last_hash) "
    "SELECT 1, id, hash FROM audit_auditevent WHERE id = {row} "
    "ON CONFLICT (id) DO UPDATE SET last_id = excluded.last_id, last_hash = excluded.last_hash",
    "update a checkpoint": "UPDATE audit_auditcheckpoint SET hash = 'forged'",
    "delete a checkpoint": "DELETE FROM audit_auditcheckpoint",
    "upsert a checkpoint": f"INSERT INTO audit_auditcheckpoint ({CHECKPOINT}) SELECT {CHECKPOINT} "
    "FROM audit_auditcheckpoint WHERE true ON CONFLICT (id) DO UPDATE SET hash = 'forged'",
}
SQLITE = {
    # REPLACE deletes the row in its way without firing DELETE triggers.
    "replace a row (INSERT OR REPLACE)": f"INSERT OR REPLACE INTO audit_auditevent ({COLUMNS}) "
    f"SELECT {FORGED} FROM audit_auditevent WHERE id = {{row}}",
    "replace a row (REPLACE INTO)": f"REPLACE INTO audit_auditevent ({COLUMNS}) "
    f"SELECT {FORGED} FROM audit_auditevent WHERE id = {{row}}",
    "replace a row through its hash": f"INSERT OR REPLACE INTO audit_auditevent ({COLUMNS}) "
    f"SELECT {COLUMNS.replace('id,', '1000,', 1)} FROM audit_auditevent WHERE id = {{row}}",
    "renumber a row (UPDATE OR REPLACE)": "UPDATE OR REPLACE audit_auditevent SET id = {row} "
    "WHERE id = {last}",
    "replace the head": "INSERT OR REPLACE INTO audit_audithead (id, last_id, last_hash) "
    "SELECT 1, id, hash FROM audit_auditevent WHERE id = {row}",
    "replace a checkpoint": f"INSERT OR REPLACE INTO audit_auditcheckpoint ({CHECKPOINT}) "
    f"SELECT {CHECKPOINT.replace(' hash,', ' 0,')} FROM audit_auditcheckpoint",
}
POSTGRESQL_ONLY = {
    "truncate the log": "TRUNCATE audit_auditevent",
    "truncate the head": "TRUNCATE audit_audithead",
    "truncate the checkpoints": "TRUNCATE audit_auditcheckpoint",
    "truncate them all": "TRUNCATE audit_auditevent, audit_audithead, audit_auditcheckpoint",
    "merge an update": "MERGE INTO audit_auditevent e USING (SELECT {row} AS id) s "
    "ON e.id = s.id WHEN MATCHED THEN UPDATE SET service = 'forged'",
    "merge a delete": "MERGE INTO audit_auditevent e USING (SELECT {row} AS id) s "
    "ON e.id = s.id WHEN MATCHED THEN DELETE",
    # Schema changes that would switch the protection off (the event trigger).
    "drop a trigger": "DROP TRIGGER audit_auditevent_append_only ON audit_auditevent",
    "drop the truncate trigger": "DROP TRIGGER audit_auditevent_no_truncate ON audit_auditevent",
    "drop the head's trigger": "DROP TRIGGER audit_audithead_only_forward ON audit_audithead",
    "drop a checkpoint trigger": "DROP TRIGGER audit_auditcheckpoint_append_only "
    "ON audit_auditcheckpoint",
    "disable a trigger": "ALTER TABLE audit_auditevent "
    "DISABLE TRIGGER audit_auditevent_append_only",
    "disable every trigger": "ALTER TABLE audit_audithead DISABLE TRIGGER ALL",
    "make a trigger fire on replicas only": "ALTER TABLE audit_auditevent "
    "ENABLE REPLICA TRIGGER audit_auditevent_append_only",
    "rename a trigger": "ALTER TRIGGER audit_auditevent_append_only ON audit_auditevent "
    "RENAME TO audit_auditevent_gone",
    "replace a trigger's function": "CREATE OR REPLACE FUNCTION audit_auditevent_refuse() "
    "RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN coalesce(NEW, OLD); END $$",
    "drop a trigger's function": "DROP FUNCTION audit_audithead_guard() CASCADE",
    "drop the log": "DROP TABLE audit_auditevent",
    "drop the head": "DROP TABLE audit_audithead CASCADE",
    "rename the log": "ALTER TABLE audit_auditevent RENAME TO audit_auditevent_old",
    "move the log to another schema": "CREATE SCHEMA attic; ALTER TABLE audit_auditevent "
    "SET SCHEMA attic",
    "drop a column": "ALTER TABLE audit_auditevent DROP COLUMN user_agent",
    "rename a column": "ALTER TABLE audit_auditevent RENAME COLUMN service TO service_old",
    "rewrite a column": "ALTER TABLE audit_auditevent ALTER COLUMN service "
    "TYPE varchar(100) USING 'forged'",
    "rewrite the head": "ALTER TABLE audit_audithead ALTER COLUMN last_hash "
    f"TYPE varchar(64) USING '{'f' * 64}'",
}
CASES = {**STATEMENTS, **(POSTGRESQL_ONLY if POSTGRESQL else SQLITE)}


def _refused(action) -> str:
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        action()
    return str(caught.value)


def _sql(statement: str, params=()):
    def run():
        with connection.cursor() as cursor:
            cursor.execute(statement, params)

    return run


@pytest.fixture
def log(settings, tmp_path):
    """Five rows, the head on the last, and a checkpoint of them."""
    settings.AUDIT_SIGNING_KEY, _ = key_generate()
    settings.AUDIT_CHECKPOINT_FILE = str(tmp_path / "checkpoints.jsonl")
    events = [record(verb=f"test.row{n}", service="shop") for n in range(5)]
    audit_checkpoint_create()
    return events


def state() -> tuple:
    """All a reader of the log would compare: rows, head, checkpoints."""
    return (
        list(AuditEvent.objects.order_by("id").values_list("id", "verb", "service", "hash")),
        list(AuditHead.objects.values_list("id", "last_id", "last_hash")),
        list(AuditCheckpoint.objects.values_list("id", "sequence", "hash")),
    )


def test_migrations_installed_the_triggers():
    with connection.cursor() as cursor:
        if POSTGRESQL:
            cursor.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
        else:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        installed = {name for (name,) in cursor.fetchall()}

    assert installed >= TRIGGERS[connection.vendor]
    assert triggers_problems() == []


@pytest.mark.parametrize("statement", CASES.values(), ids=CASES.keys())
def test_the_database_refuses_it(log, statement):
    before = state()

    message = _refused(_sql(statement.format(row=log[2].id, last=log[-1].id)))

    assert REFUSED in message
    assert state() == before
    assert triggers_problems() == []


def test_the_head_still_moves_forward_to_each_new_row(log):
    added = record()

    assert AuditHead.objects.get().last_id == added.id == log[-1].id + 1
    assert added.prev_hash == log[-1].hash


@pytest.mark.django_db(transaction=True)
def test_replace_from_a_connection_of_its_own_is_refused_too(log):
    """The break an outside review found, as whoever opens the database with its own
    client (sqlite3 on the file, psql) would try it: REPLACE a row, then move the head
    back to it; or, on PostgreSQL, an upsert."""
    before = state()
    if POSTGRESQL:
        settings = connection.settings_dict
        attacker = psycopg.connect(
            dbname=settings["NAME"], user=settings["USER"], host=settings["HOST"] or "127.0.0.1",
            port=settings["PORT"] or 5432, password=settings["PASSWORD"] or None,
            autocommit=True,
        )  # fmt: skip
        errors = psycopg.errors.IntegrityConstraintViolation
        replace = STATEMENTS["upsert a row"]
    else:
        attacker = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
        errors = sqlite3.IntegrityError
        replace = SQLITE["replace a row (INSERT OR REPLACE)"]
    with closing(attacker):
        for statement in (replace, STATEMENTS["move the head back"]):
            with pytest.raises(errors, match=REFUSED):
                attacker.execute(statement.format(row=log[2].id))

    assert state() == before


def test_it_refuses_an_update_through_the_orm():
    event = record(service="shop")

    message = _refused(lambda: AuditEvent.objects.filter(pk=event.pk).update(service="other"))

    assert REFUSED in message and "UPDATE" in message
    assert AuditEvent.objects.get(pk=event.pk).service == "shop"


def test_it_refuses_saving_a_changed_row():
    event = record(service="shop")
    event.service = "other"

    assert REFUSED in _refused(event.save)


def test_it_refuses_an_update_in_sql():
    event = record(service="shop")

    message = _refused(
        _sql("UPDATE audit_auditevent SET hash = %s WHERE id = %s", ["0" * 64, event.pk])
    )

    assert REFUSED in message
    assert AuditEvent.objects.get(pk=event.pk).hash == event.hash


def test_it_refuses_a_delete_through_the_orm():
    event = record()

    assert REFUSED in _refused(lambda: AuditEvent.objects.filter(pk=event.pk).delete())
    assert REFUSED in _refused(event.delete)
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_it_refuses_a_delete_in_sql():
    record(), record()

    message = _refused(_sql("DELETE FROM audit_auditevent"))

    assert REFUSED in message and "DELETE" in message
    assert AuditEvent.objects.count() == 2


@pytest.mark.skipif(not POSTGRESQL, reason="SQLite has no TRUNCATE")
def test_it_refuses_a_truncate_on_postgresql():
    record()

    message = _refused(_sql("TRUNCATE audit_auditevent"))

    assert REFUSED in message and "TRUNCATE" in message
    assert AuditEvent.objects.count() == 1


@pytest.mark.skipif(not POSTGRESQL, reason="event triggers are PostgreSQL's")
def test_migrations_may_still_add_columns_and_indexes_on_postgresql(log):
    """The event trigger refuses what weakens the log, not every schema change."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent ADD COLUMN note text DEFAULT ''")
        cursor.execute("CREATE INDEX audit_note_idx ON audit_auditevent (note)")
        cursor.execute("ALTER TABLE audit_auditevent ALTER COLUMN verb TYPE varchar(100)")

    assert record().id == log[-1].id + 1
    assert triggers_problems() == []


@pytest.mark.skipif(not POSTGRESQL, reason="roles are PostgreSQL's")
def test_the_tables_owner_cannot_switch_the_triggers_off(log):
    """In production the portal's role often owns its tables (it runs the migrations):
    it may drop a trigger of its own table, were it not for the event trigger; it may not
    make its session skip triggers, nor touch the event trigger (only a superuser may)."""
    owner = "pushbutton_owner_audit_test"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {owner} NOLOGIN")
        # As `migrate` run by that role leaves them (it owns the schema, as a database's
        # owner owns `public`).
        cursor.execute(f"ALTER SCHEMA public OWNER TO {owner}")
        cursor.execute(f"ALTER TABLE audit_auditevent OWNER TO {owner}")
        cursor.execute(f"ALTER FUNCTION audit_auditevent_refuse() OWNER TO {owner}")
        cursor.execute(f"SET ROLE {owner}")
    try:
        message = _refused(_sql(POSTGRESQL_ONLY["drop a trigger"]))
        for statement in (
            "SET session_replication_role = replica",
            "DROP FUNCTION pushbutton_audit_guard.audit_guard_after() CASCADE",
            "DROP SCHEMA pushbutton_audit_guard CASCADE",
            "ALTER EVENT TRIGGER audit_guard_after DISABLE",
        ):
            denied = pytest.raises(Exception, match=r"permission denied|must be owner")
            with denied, transaction.atomic():
                _sql(statement)()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")
    assert REFUSED in message and "DROP TRIGGER" in message
    assert triggers_problems() == []


@pytest.mark.skipif(not POSTGRESQL, reason="roles are PostgreSQL's")
def test_a_role_without_update_and_delete_rights_cannot_change_the_log():
    """The README's database role: it writes the log, and cannot change or remove rows
    even with the triggers gone (they are its second line of defence)."""
    event = record()
    with connection.cursor() as cursor:
        cursor.execute("CREATE ROLE pushbutton_app_audit_test NOLOGIN")
        cursor.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public "
                       "TO pushbutton_app_audit_test")  # fmt: skip
        cursor.execute("REVOKE UPDATE, DELETE, TRUNCATE ON audit_auditevent "
                       "FROM pushbutton_app_audit_test")  # fmt: skip
        cursor.execute("SET ROLE pushbutton_app_audit_test")
    try:
        written = record()  # appending works: INSERT, and UPDATE of the chain head
        for statement in ("UPDATE audit_auditevent SET verb = 'x'", "DELETE FROM audit_auditevent",
                          "TRUNCATE audit_auditevent"):  # fmt: skip
            with pytest.raises(Exception, match="permission denied"), transaction.atomic():
                _sql(statement)()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")
    assert written.prev_hash == event.hash
