"""The database refuses UPDATE, DELETE and TRUNCATE on the audit log (both databases)."""

import pytest
from django.db import IntegrityError, connection, transaction

from apps.audit.models import AuditEvent
from apps.audit.verification import TRIGGERS, triggers_present
from tests.audit.conftest import record

pytestmark = pytest.mark.django_db
REFUSED = "The audit log is append-only"


def _refused(action) -> str:
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        action()
    return str(caught.value)


def _sql(statement: str, params=()):
    def run():
        with connection.cursor() as cursor:
            cursor.execute(statement, params)

    return run


def test_migrations_installed_the_triggers():
    assert triggers_present() == TRIGGERS[connection.vendor]


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


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite has no TRUNCATE")
def test_it_refuses_a_truncate_on_postgresql():
    record()

    message = _refused(_sql("TRUNCATE audit_auditevent"))

    assert REFUSED in message and "TRUNCATE" in message
    assert AuditEvent.objects.count() == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="roles are PostgreSQL's")
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
