"""Search in a run's log through an index, not by reading the log (selectors/search.py).

- `terminal_string` marks the few events a search reads whatever it looks for, with a
  partial index; so does another for a dry run's diffs.
- PostgreSQL: a trigram index (pg_trgm) on UPPER(stdout), the expression `icontains`
  reads. Where the extension cannot be created, a search still works, by reading the log.
- SQLite: an FTS5 table with the trigram tokenizer over the events' output (external
  content: it holds the index only), kept by triggers as rows are inserted or removed.
"""

import logging

from django.db import migrations, models
from django.db.models import Q

log = logging.getLogger(__name__)

TERMINAL_STRINGS = ("\x1b]", "\x1bP", "\x1bX", "\x1b^", "\x1b_")
SQLITE_CREATE = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS runs_runevent_text USING fts5(stdout, "
    "content='runs_runevent', content_rowid='id', tokenize='trigram case_sensitive 0')",
    "CREATE TRIGGER IF NOT EXISTS runs_runevent_text_insert AFTER INSERT ON runs_runevent "
    "BEGIN INSERT INTO runs_runevent_text(rowid, stdout) VALUES (new.id, new.stdout); END",
    "CREATE TRIGGER IF NOT EXISTS runs_runevent_text_delete AFTER DELETE ON runs_runevent "
    "BEGIN INSERT INTO runs_runevent_text(runs_runevent_text, rowid, stdout) "
    "VALUES ('delete', old.id, old.stdout); END",
    "CREATE TRIGGER IF NOT EXISTS runs_runevent_text_update AFTER UPDATE OF stdout "
    "ON runs_runevent BEGIN "
    "INSERT INTO runs_runevent_text(runs_runevent_text, rowid, stdout) "
    "VALUES ('delete', old.id, old.stdout); "
    "INSERT INTO runs_runevent_text(rowid, stdout) VALUES (new.id, new.stdout); END",
    "INSERT INTO runs_runevent_text(runs_runevent_text) VALUES ('rebuild')",
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS runs_runevent_text_insert",
    "DROP TRIGGER IF EXISTS runs_runevent_text_delete",
    "DROP TRIGGER IF EXISTS runs_runevent_text_update",
    "DROP TABLE IF EXISTS runs_runevent_text",
]


def mark_terminal_strings(apps, schema_editor):
    RunEvent = apps.get_model("runs", "RunEvent")
    holds = Q()
    for start in TERMINAL_STRINGS:
        holds |= Q(stdout__contains=start)
    RunEvent.objects.using(schema_editor.connection.alias).filter(holds).update(
        terminal_string=True
    )


def _pg_trgm(cursor) -> bool:
    cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
    if cursor.fetchone() is not None:
        return True
    try:
        cursor.execute("SAVEPOINT runs_trgm")
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        cursor.execute("RELEASE SAVEPOINT runs_trgm")
    except Exception as exc:  # no privilege, or contrib not installed
        cursor.execute("ROLLBACK TO SAVEPOINT runs_trgm")
        log.warning("No pg_trgm (%s): a search in a run's log reads the log.", exc)
        return False
    return True


def create(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    with schema_editor.connection.cursor() as cursor:
        if vendor == "postgresql" and _pg_trgm(cursor):
            cursor.execute(
                "CREATE INDEX IF NOT EXISTS runs_runevent_stdout_trgm ON runs_runevent "
                "USING gin (UPPER(stdout) gin_trgm_ops)"
            )
        elif vendor == "sqlite":
            for sql in SQLITE_CREATE:
                cursor.execute(sql)


def drop(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    with schema_editor.connection.cursor() as cursor:
        if vendor == "postgresql":
            cursor.execute("DROP INDEX IF EXISTS runs_runevent_stdout_trgm")
        elif vendor == "sqlite":
            for sql in SQLITE_DROP:
                cursor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("runs", "0007_run_progress")]

    operations = [
        migrations.AddField(
            model_name="runevent",
            name="terminal_string",
            field=models.BooleanField(default=False),
        ),
        migrations.AddIndex(
            model_name="runevent",
            index=models.Index(
                condition=models.Q(("terminal_string", True)),
                fields=["run", "counter"],
                name="runevent_terminal_string",
            ),
        ),
        migrations.AddIndex(
            model_name="runevent",
            index=models.Index(
                condition=models.Q(("event", "runner_on_file_diff")),
                fields=["run", "counter"],
                name="runevent_file_diff",
            ),
        ),
        migrations.RunPython(mark_terminal_strings, migrations.RunPython.noop),
        migrations.RunPython(create, drop),
    ]
