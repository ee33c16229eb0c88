# ruff: noqa: S608 (every statement here is built from this module's own constants)
"""SQLite: a full-text table (FTS5, trigram tokenizer) for the review pages' free-text
search, so it reads the index, not the whole log (PostgreSQL has its trigram index since
migration 0004).

It is contentless (it holds the index only, keyed by the row's id) and kept by an AFTER
INSERT trigger, with the very text apps.audit.selectors.SEARCH_TEXT searches. The log's
rows are never changed nor removed (the append-only triggers refuse it), so nothing else
needs keeping. The search still checks each row's text itself: the table only narrows
the rows it reads.
"""

from django.db import migrations

NEW_TEXT = (
    "(new.actor_name || ' ' || new.verb || ' ' || new.object_type || ' ' || new.object_id "
    "|| ' ' || new.object_repr || ' ' || new.service || ' ' || new.environment || ' ' || "
    "new.details)"
)
ROW_TEXT = NEW_TEXT.replace("new.", "")
CREATE = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS audit_auditevent_text USING fts5(text, "
    "content='', tokenize='trigram case_sensitive 0')",
    "CREATE TRIGGER IF NOT EXISTS audit_auditevent_text_insert AFTER INSERT ON "
    "audit_auditevent BEGIN INSERT INTO audit_auditevent_text(rowid, text) "
    f"VALUES (new.id, {NEW_TEXT}); END",
    f"INSERT INTO audit_auditevent_text(rowid, text) SELECT id, {ROW_TEXT} FROM audit_auditevent",
]
DROP = [
    "DROP TRIGGER IF EXISTS audit_auditevent_text_insert",
    "DROP TABLE IF EXISTS audit_auditevent_text",
]


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        with schema_editor.connection.cursor() as cursor:
            for sql in CREATE:
                cursor.execute(sql)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        with schema_editor.connection.cursor() as cursor:
            for sql in DROP:
                cursor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("audit", "0006_read_log_permission")]

    operations = [migrations.RunPython(create, drop)]
