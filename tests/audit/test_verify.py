"""verify_audit walks the chain and names the first row that does not match."""

import gzip
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from apps.audit.models import AuditEvent, AuditHead, AuditVerification
from tests.audit.conftest import record
from tests.audit.database import TABLES, TRIGGERS, chain_rewrite, owner_ddl, tamper

pytestmark = pytest.mark.django_db


@pytest.fixture
def signing(settings, tmp_path):
    """A signing key and a checkpoint file of this test's own."""
    from apps.audit.checkpoints import key_generate

    settings.AUDIT_SIGNING_KEY, _public = key_generate()
    settings.AUDIT_PUBLIC_KEY = ""
    settings.AUDIT_CHECKPOINT_FILE = str(tmp_path / "checkpoints.jsonl")
    settings.AUDIT_CHECKPOINT_WEBHOOK = ""
    return tmp_path / "checkpoints.jsonl"


@pytest.fixture
def log():
    """Ten rows."""
    return [record(verb=f"test.row{n}", details={"n": n}) for n in range(10)]


def verify(*args) -> str:
    out = StringIO()
    call_command("verify_audit", *args, stdout=out)
    return out.getvalue()


def refused(*args) -> str:
    with pytest.raises(CommandError) as caught:
        verify(*args)
    assert caught.value.returncode == 1
    return str(caught.value)


def test_it_verifies_an_intact_chain_and_says_how_many_rows_and_how_fast(log, signing):
    call_command("audit_checkpoint", stdout=StringIO())

    out = verify()

    assert f"Checked {len(log)} rows (#{log[0].id} to #{log[-1].id})" in out
    assert "rows/s" in out
    assert "Checked 1 signed checkpoint(s)" in out
    assert f"The chain is intact up to #{log[-1].id}" in out
    result = AuditVerification.objects.get()
    assert (result.ok, result.rows_checked, result.last_sequence) == (True, 10, log[-1].id)
    # The walk itself is kept in the log too.
    assert AuditEvent.objects.order_by("-id").first().verb == "audit.verify"


def test_it_names_a_row_changed_behind_the_triggers_back(log):
    tamper("UPDATE audit_auditevent SET service = 'changed' WHERE id = %s", [log[4].id])

    message = refused()

    assert f"row #{log[4].id}: its content does not match its hash" in message
    result = AuditVerification.objects.get()
    assert not result.ok and result.first_bad_sequence == log[4].id


def test_it_names_a_row_removed_from_the_middle(log):
    tamper("DELETE FROM audit_auditevent WHERE id = %s", [log[3].id])

    assert f"row #{log[3].id}: row #{log[3].id} is missing" in refused()


def test_it_notices_rows_cut_from_the_end_against_the_newest_checkpoint(log, signing):
    call_command("audit_checkpoint", stdout=StringIO())
    tamper("DELETE FROM audit_auditevent WHERE id >= %s", [log[7].id])
    tamper("UPDATE audit_audithead SET last_id = %s, last_hash = %s", [log[6].id, log[6].hash])

    message = refused("--checkpoints", str(signing))

    assert "rows were cut from the end: the checkpoint signed at" in message
    assert f"covers #{log[-1].id}, the log ends at #{log[6].id}" in message


def test_it_notices_a_truncated_log(log, signing):
    call_command("audit_checkpoint", stdout=StringIO())
    if connection.vendor == "postgresql":
        tamper("TRUNCATE audit_auditevent")
    else:
        tamper("DELETE FROM audit_auditevent")
    tamper("DELETE FROM audit_audithead")

    assert "rows were cut from the end" in refused()


def test_without_a_checkpoint_the_chain_head_still_tells_rows_cut_from_the_end(log):
    tamper("DELETE FROM audit_auditevent WHERE id = %s", [log[-1].id])

    assert f"the chain head says #{log[-1].id}, the log ends at #{log[-2].id}" in refused()


def test_a_rewritten_chain_differs_from_the_signed_checkpoint(log, signing):
    """Whoever rewrites a row and every hash after it still cannot match the signature."""
    call_command("audit_checkpoint", stdout=StringIO())
    chain_rewrite(log[2].id)

    message = refused()

    assert f"row #{log[-1].id}: its hash differs from the one signed at" in message


def test_it_refuses_a_forged_checkpoint(log, signing):
    call_command("audit_checkpoint", stdout=StringIO())
    checkpoint = json.loads(signing.read_text())
    checkpoint["sequence"] = log[5].id
    signing.write_text(json.dumps(checkpoint) + "\n")

    with pytest.raises(CommandError, match="line 1: the signature does not hold"):
        verify()


def test_it_refuses_a_checkpoint_file_that_is_not_one(log, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text("hello\n")

    with pytest.raises(CommandError, match="line 1: not a checkpoint"):
        verify("--checkpoints", str(path), "--public-key", "x")
    with pytest.raises(CommandError, match="No checkpoint file"):
        verify("--checkpoints", str(tmp_path / "missing.jsonl"))


def test_it_archives_rows_with_their_hashes_and_checks_an_archive(log, tmp_path):
    path = tmp_path / "audit.jsonl.gz"

    out = StringIO()
    call_command("audit_archive", str(path), stdout=out)

    assert f"Archived {len(log)} rows" in out.getvalue()
    assert AuditEvent.objects.count() == len(log)  # archiving deletes nothing
    with gzip.open(path, "rt") as archive:
        lines = archive.read().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [e.id for e in log]
    manifest = json.loads((tmp_path / "audit.jsonl.gz.manifest.json").read_text())
    assert (manifest["rows"], manifest["last_hash"]) == (len(log), log[-1].hash)
    assert f"Checked {len(log)} rows" in verify("--archive", str(path))

    changed = json.loads(lines[5])
    changed["details"]["n"] = 99
    lines[5] = json.dumps(changed)
    with gzip.open(path, "wt") as out_file:
        out_file.write("\n".join(lines) + "\n")
    assert f"row #{log[5].id}: its content does not match its hash" in refused(
        "--archive", str(path)
    )


def test_it_archives_a_date_range_and_explains_a_bad_date(log, tmp_path):
    with pytest.raises(CommandError, match="--until: Enter a date"):
        call_command("audit_archive", str(tmp_path / "a.jsonl"), "--until", "last week")
    out = StringIO()
    call_command("audit_archive", str(tmp_path / "b.jsonl"), "--until", "2000-01-01", stdout=out)
    assert "No rows in that range" in out.getvalue()


def test_the_page_shows_the_last_verification(log, auditor_client):
    assert "has not been verified yet" in auditor_client.get("/audit/").content.decode()
    verify()
    assert "Chain intact" in auditor_client.get("/audit/").content.decode()

    tamper("UPDATE audit_auditevent SET verb = 'x' WHERE id = %s", [log[1].id])
    refused()

    page = auditor_client.get("/audit/").content.decode()
    assert "Chain broken" in page and f"row #{log[1].id}" in page
    assert AuditHead.objects.get().last_id > log[-1].id


# --- the database's own protection ----------------------------------------------------
def _drop_trigger(name: str) -> str:
    if connection.vendor == "sqlite":
        return f"DROP TRIGGER {name}"
    return f"DROP TRIGGER {name} ON {next(t for t in TABLES if name.startswith(t + '_'))}"


@pytest.mark.parametrize("trigger", sorted(TRIGGERS[connection.vendor]))
def test_a_missing_trigger_fails_the_verification_naming_it(log, trigger):
    """Whoever owns the database can drop a trigger (on PostgreSQL only behind the event
    trigger's back, as a superuser): the chain may still be intact, the log no longer
    protected, and verify_audit says so, failing."""
    owner_ddl(_drop_trigger(trigger))

    message = refused()

    assert trigger in message and "missing" in message
    assert not AuditVerification.objects.get().ok


SCHEMA_CHANGES = {
    "postgresql": {
        "disable a trigger": (
            "ALTER TABLE audit_auditevent DISABLE TRIGGER audit_auditevent_append_only",
            "audit_auditevent_append_only on audit_auditevent is disabled",
        ),
        "make a trigger do nothing": (
            "CREATE OR REPLACE FUNCTION audit_audithead_guard() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
            "function audit_audithead_guard() was altered",
        ),
    },
    "sqlite": {
        "make a trigger do nothing": (
            "DROP TRIGGER audit_audithead_only_forward",
            "CREATE TRIGGER audit_audithead_only_forward BEFORE UPDATE ON audit_audithead "
            "BEGIN SELECT 1; END",
            "audit_audithead_only_forward on audit_audithead was altered",
        ),
        "drop the log": ("DROP TABLE audit_auditevent", "table audit_auditevent is missing"),
        "rename the log": (
            "ALTER TABLE audit_auditevent RENAME TO audit_auditevent_old",
            "table audit_auditevent is missing",
        ),
        "drop a column": (
            "ALTER TABLE audit_auditevent DROP COLUMN user_agent",
            "column audit_auditevent.user_agent is missing",
        ),
        "rename a column": (
            "ALTER TABLE audit_auditevent RENAME COLUMN user_agent TO agent",
            "column audit_auditevent.user_agent is missing",
        ),
    },
}[connection.vendor]


@pytest.mark.parametrize("change", SCHEMA_CHANGES.values(), ids=SCHEMA_CHANGES.keys())
def test_a_schema_change_that_weakens_the_log_fails_the_verification(log, change):
    """SQLite has no hook to refuse these (PostgreSQL's event trigger refuses them, so
    there they are made as a superuser, behind its back): verify_audit names them."""
    *statements, named = change
    for statement in statements:
        owner_ddl(statement)

    message = refused()

    assert named in message
    assert not AuditVerification.objects.get().ok


@pytest.mark.skipif(connection.vendor != "postgresql", reason="event triggers are PostgreSQL's")
def test_without_the_event_trigger_it_warns_and_still_verifies(log):
    """Only a superuser can create (or drop) the event trigger; without it the tables'
    owner could drop a row trigger, which verify_audit would then report as a failure."""
    with connection.cursor() as cursor:
        cursor.execute("DROP EVENT TRIGGER audit_guard_after")

    out = verify()

    assert "The chain is intact" in out
    assert "audit_guard_after" in out and "superuser" in out


def test_the_triggers_are_reinstalled_and_verification_passes_again(log):
    trigger = sorted(TRIGGERS[connection.vendor])[0]
    owner_ddl(_drop_trigger(trigger))
    assert trigger in refused()

    out = StringIO()
    call_command("audit_triggers", "--install", stdout=out)

    assert f"Installed trigger {trigger}" in out.getvalue()
    assert "The chain is intact up to" in verify()
