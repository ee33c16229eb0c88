"""PostgreSQL: a trigram index for the review pages' free-text search.

It covers the very expression apps.audit.selectors.SEARCH_TEXT searches, so
`ILIKE '%words%'` reads the index, not the whole log. It needs the pg_trgm
extension (trusted since PostgreSQL 13: the database owner may create it);
where it cannot be created the search still works, by reading the log.
"""

import logging

from django.db import migrations

log = logging.getLogger(__name__)

SEARCH_TEXT = (
    "(actor_name || ' ' || verb || ' ' || object_type || ' ' || object_id || ' ' || "
    "object_repr || ' ' || service || ' ' || environment || ' ' || details)"
)


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
        if cursor.fetchone() is None:
            try:
                cursor.execute("SAVEPOINT audit_trgm")
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                cursor.execute("RELEASE SAVEPOINT audit_trgm")
            except Exception as exc:  # no privilege, or contrib not installed
                cursor.execute("ROLLBACK TO SAVEPOINT audit_trgm")
                log.warning("No pg_trgm (%s): the audit log's text search reads every row.", exc)
                return
        cursor.execute(
            "CREATE INDEX IF NOT EXISTS audit_text_trgm ON audit_auditevent "
            f"USING gin ({SEARCH_TEXT} gin_trgm_ops)"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS audit_text_trgm", params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_append_only_triggers")]

    operations = [migrations.RunPython(create, drop)]
