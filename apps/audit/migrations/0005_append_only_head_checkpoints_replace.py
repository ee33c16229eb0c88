"""The database refuses every change to the log, its head and its checkpoints.

Adds to migration 0003: on SQLite a trigger that refuses REPLACE (which removes
a row without firing DELETE triggers); on both databases triggers on the chain's
head (it only moves forward, onto the newest row) and on the checkpoints; on
PostgreSQL, when the migrating role is a superuser, event triggers that refuse
schema changes switching any of it off. See apps/audit/triggers.py.
"""

import logging

from django.db import migrations

from apps.audit.triggers import event_trigger_notes, triggers_install

log = logging.getLogger(__name__)

POSTGRESQL_REVERSE = [
    "DROP EVENT TRIGGER IF EXISTS audit_guard_before",
    "DROP EVENT TRIGGER IF EXISTS audit_guard_after",
    "DROP EVENT TRIGGER IF EXISTS audit_guard_rewrite",
    "DROP FUNCTION IF EXISTS pushbutton_audit_guard.audit_guard_before()",
    "DROP FUNCTION IF EXISTS pushbutton_audit_guard.audit_guard_after()",
    "DROP FUNCTION IF EXISTS pushbutton_audit_guard.audit_guard_rewrite()",
    "DROP FUNCTION IF EXISTS pushbutton_audit_guard.audit_guard_problems()",
    "DROP SCHEMA IF EXISTS pushbutton_audit_guard",
    "DROP TRIGGER IF EXISTS audit_audithead_only_forward ON audit_audithead",
    "DROP TRIGGER IF EXISTS audit_audithead_no_truncate ON audit_audithead",
    "DROP TRIGGER IF EXISTS audit_auditcheckpoint_append_only ON audit_auditcheckpoint",
    "DROP TRIGGER IF EXISTS audit_auditcheckpoint_no_truncate ON audit_auditcheckpoint",
    "DROP FUNCTION IF EXISTS audit_audithead_guard()",
]
SQLITE_REVERSE = [
    "DROP TRIGGER IF EXISTS audit_auditevent_no_replace",
    "DROP TRIGGER IF EXISTS audit_audithead_only_forward",
    "DROP TRIGGER IF EXISTS audit_audithead_no_delete",
    "DROP TRIGGER IF EXISTS audit_audithead_no_replace",
    "DROP TRIGGER IF EXISTS audit_auditcheckpoint_no_update",
    "DROP TRIGGER IF EXISTS audit_auditcheckpoint_no_delete",
    "DROP TRIGGER IF EXISTS audit_auditcheckpoint_no_replace",
]


def install(apps, schema_editor):
    triggers_install(schema_editor.connection)
    for note in event_trigger_notes(schema_editor.connection)[:1]:
        log.warning(note)  # not a superuser: the row triggers are in place, not the guard


def uninstall(apps, schema_editor):
    # The event triggers go first (only a superuser may drop them): they would refuse the rest.
    statements = {"postgresql": POSTGRESQL_REVERSE, "sqlite": SQLITE_REVERSE}
    for sql in statements[schema_editor.connection.vendor]:
        schema_editor.execute(sql, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_text_search_index")]

    operations = [migrations.RunPython(install, uninstall)]
