"""Credentials: encrypted at rest, write-only, audited, rotated, and handed to runs."""

import json
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from apps.audit.constants import Via
from apps.audit.models import AuditEvent
from apps.environments.constants import CredentialKind
from apps.environments.models import Credential
from apps.environments.selectors import CredentialConflict, credentials_for_run
from apps.environments.services import credential_create
from apps.runs import services
from apps.runs.models import Run
from portal.crypto import decrypt_text
from tests.factories import ActionFactory, EnvironmentFactory
from tests.runs.helpers import launch, queue_held

SECRET = "s3cret-never-shown-again"
ADD_URL = "/admin/environments/credential/add/"


def _key(passphrase: str = "") -> str:
    encryption = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption)
        .decode()
    )


def _create(environments, *, name="db", kind=CredentialKind.SECRET_VARIABLE, **values):
    defaults = {"value": SECRET, "variable": "db_password" if kind == "secret_variable" else ""}
    return credential_create(
        name=name,
        kind=kind,
        environments=environments,
        acting_user=None,
        via=Via.CLI,
        **{**defaults, **values},
    )


def _everything_stored() -> str:
    """Every row of every table, as text."""
    rows = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            rows += [str(row) for row in cursor.fetchall()]
    return "\n".join(rows)


# --- at rest ------------------------------------------------------------------------
def test_it_keeps_the_value_only_encrypted(local_env):
    key, passphrase = _key("a passphrase"), "a passphrase"
    credential = _create([local_env])
    ssh = _create(
        [local_env], name="key", kind=CredentialKind.SSH_KEY, value=key, passphrase=passphrase
    )

    stored = _everything_stored()
    assert SECRET not in stored
    assert passphrase not in stored
    assert key.splitlines()[1] not in stored
    assert decrypt_text(credential.secret_encrypted) == SECRET
    assert decrypt_text(ssh.passphrase_encrypted) == passphrase
    assert ssh.fingerprint.startswith("ssh-ed25519 SHA256:")
    row = AuditEvent.objects.get(verb="credential.create", object_id=str(credential.pk))
    assert row.details["environments"] == ["local"]
    assert row.details["secret_changed"] is True


@pytest.mark.parametrize(
    ("kind", "value", "passphrase", "field", "message"),
    [
        (CredentialKind.SSH_KEY, "not a key", "", "value", "Not an SSH private key"),
        (CredentialKind.SSH_KEY, "KEY:pp", "", "passphrase", "protected by a passphrase"),
        (CredentialKind.SSH_KEY, "KEY:pp", "wrong", "passphrase", "does not open"),
        (CredentialKind.SSH_KEY, "KEY:", "extra", "passphrase", "has no passphrase"),
        (CredentialKind.BECOME_PASSWORD, "two\nlines", "", "value", "line break"),
        (CredentialKind.VAULT_PASSWORD, "password", "pp", "passphrase", "Only SSH keys"),
        (CredentialKind.VAULT_PASSWORD, "pw", "", "value", "At least 3 characters"),
        (CredentialKind.VAULT_PASSWORD, "", "", "value", "Enter the secret value"),
    ],
)
def test_it_says_what_is_wrong_with_a_value(local_env, kind, value, passphrase, field, message):
    if value.startswith("KEY:"):
        value = _key(value.removeprefix("KEY:"))

    with pytest.raises(ValidationError) as refused:
        _create([local_env], kind=kind, value=value, passphrase=passphrase)

    assert message in " ".join(refused.value.message_dict[field])
    assert not Credential.objects.exists()


@pytest.mark.parametrize(
    ("variable", "message"),
    [("", "needs the name"), ("Bad-Name", "Lower-case"), ("hostvars", "Ansible's own"),
     ("pushbutton_x", "portal's own")],
)  # fmt: skip
def test_it_checks_a_secret_variable_s_name(local_env, variable, message):
    with pytest.raises(ValidationError) as refused:
        _create([local_env], variable=variable)

    assert message in " ".join(refused.value.message_dict["variable"])


# --- write-only in the admin --------------------------------------------------------
def test_the_admin_creates_a_credential_and_never_shows_its_value(ops_client, local_env):
    response = ops_client.post(
        ADD_URL,
        {
            "name": "db",
            "kind": CredentialKind.SECRET_VARIABLE,
            "variable": "db_password",
            "value": SECRET,
            "environments": [local_env.pk],
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    credential = Credential.objects.get()
    assert decrypt_text(credential.secret_encrypted) == SECRET
    pages = [
        ops_client.get(f"/admin/environments/credential/{credential.pk}/change/"),
        ops_client.get("/admin/environments/credential/"),
        ops_client.get(f"/admin/environments/credential/{credential.pk}/history/"),
    ]
    for page in pages:
        assert page.status_code == 200
        assert SECRET not in page.content.decode()
        assert credential.secret_encrypted not in page.content.decode()
    assert "write-only" in pages[0].content.decode()
    assert AuditEvent.objects.filter(verb="credential.create", via=Via.ADMIN).exists()


def test_a_refused_form_does_not_send_the_value_back(ops_client, local_env):
    response = ops_client.post(
        ADD_URL,
        {
            "name": "key",
            "kind": CredentialKind.SSH_KEY,
            "value": f"{SECRET} is not a key",
            "environments": [local_env.pk],
        },
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert "Not an SSH private key" in html
    assert SECRET not in html
    assert not Credential.objects.exists()


def test_an_empty_value_on_change_keeps_the_secret(ops_client, local_env):
    credential = _create([local_env])
    other = EnvironmentFactory(slug="other")

    response = ops_client.post(
        f"/admin/environments/credential/{credential.pk}/change/",
        {
            "name": "db",
            "kind": CredentialKind.SECRET_VARIABLE,
            "variable": "db_password",
            "value": "",
            "environments": [local_env.pk, other.pk],
        },
    )

    assert response.status_code == 302
    credential.refresh_from_db()
    assert decrypt_text(credential.secret_encrypted) == SECRET
    row = AuditEvent.objects.filter(verb="credential.update").get()
    assert "environments" in row.details["changes"]
    assert "secret_encrypted" not in row.details["changes"]


def test_a_new_value_is_audited_as_changed_never_recorded(ops_client, local_env):
    credential = _create([local_env])

    ops_client.post(
        f"/admin/environments/credential/{credential.pk}/change/",
        {
            "name": "db",
            "kind": CredentialKind.SECRET_VARIABLE,
            "variable": "db_password",
            "value": "the new one",
            "environments": [local_env.pk],
        },
    )

    credential.refresh_from_db()
    assert decrypt_text(credential.secret_encrypted) == "the new one"
    row = AuditEvent.objects.filter(verb="credential.update").get()
    assert "secret_encrypted" in row.details["changes"]  # that it changed, not to what
    assert "the new one" not in json.dumps(row.details)
    assert credential.secret_encrypted not in json.dumps(row.details)


def test_changing_the_kind_needs_a_new_value(ops_client, local_env):
    credential = _create([local_env])

    response = ops_client.post(
        f"/admin/environments/credential/{credential.pk}/change/",
        {"name": "db", "kind": CredentialKind.VAULT_PASSWORD, "environments": [local_env.pk]},
    )

    assert response.status_code == 200
    assert "Enter the secret value." in response.content.decode()


def test_deleting_a_credential_is_audited(ops_client, local_env):
    credential = _create([local_env])

    response = ops_client.post(
        f"/admin/environments/credential/{credential.pk}/delete/", {"post": "yes"}
    )

    assert response.status_code == 302
    assert not Credential.objects.exists()
    row = AuditEvent.objects.get(verb="credential.delete")
    assert row.object_repr == "db (Secret variable)"
    assert SECRET not in json.dumps(row.details)


# --- rotation --------------------------------------------------------------------------
def test_rotation_re_encrypts_credentials_and_waiting_runs_with_the_new_key(local_env, dev):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(FIELD_ENCRYPTION_KEY=old):
        credential = _create([local_env])
        action = ActionFactory(environments=[local_env], form=[{"name": "pw", "type": "secret"}])
        with queue_held():
            run = launch(
                user=dev,
                action=action,
                environment=local_env,
                parameters={"pw": "field-secret"},
            )
    out = StringIO()

    with override_settings(FIELD_ENCRYPTION_KEY=f"{new},{old}"):
        call_command("rotate_encryption_key", stdout=out)

    assert "1 credential(s) and the secrets of 1 run(s)" in out.getvalue()
    credential.refresh_from_db()
    run.refresh_from_db()
    with override_settings(FIELD_ENCRYPTION_KEY=new):  # the old key is gone
        assert decrypt_text(credential.secret_encrypted) == SECRET
        assert services.run_secret_values(run=run) == {"pw": "field-secret"}
        assert services.run_credentials(run=run)[0]["secret"] == SECRET
        out = StringIO()
        call_command("rotate_encryption_key", stdout=out)
        assert "0 credential(s) and the secrets of 0 run(s)" in out.getvalue()


def test_rotation_without_the_old_key_fails_clearly_and_changes_nothing(local_env):
    with override_settings(FIELD_ENCRYPTION_KEY=Fernet.generate_key().decode()):
        credential = _create([local_env])
    before = credential.secret_encrypted

    with (
        override_settings(FIELD_ENCRYPTION_KEY=Fernet.generate_key().decode()),
        pytest.raises(CommandError) as failed,
    ):
        call_command("rotate_encryption_key", stdout=StringIO())

    assert "Credential 'db'" in str(failed.value)
    assert "FIELD_ENCRYPTION_KEY" in str(failed.value)
    credential.refresh_from_db()
    assert credential.secret_encrypted == before


def test_rotation_can_print_a_new_key():
    out = StringIO()
    call_command("rotate_encryption_key", "--generate", stdout=out)
    Fernet(out.getvalue().strip())  # a valid key


# --- which credentials a run gets -----------------------------------------------------
def test_a_run_gets_its_environment_s_credentials_and_its_action_s_own(local_env):
    deploy, migrate = (
        ActionFactory(environments=[local_env]),
        ActionFactory(environments=[local_env]),
    )
    other_env = EnvironmentFactory(slug="other")
    everyone = _create([local_env], name="everyone", variable="shared")
    only_migrate = _create([local_env], name="migrate only", variable="db_admin")
    only_migrate.actions.set([migrate])
    _create([other_env], name="elsewhere", variable="shared")

    assert credentials_for_run(action=deploy, environment=local_env) == [everyone]
    assert sorted(c.name for c in credentials_for_run(action=migrate, environment=local_env)) == [
        "everyone",
        "migrate only",
    ]


def test_an_action_s_own_credential_wins_and_two_of_a_kind_conflict(local_env):
    action = ActionFactory(environments=[local_env])
    _create([local_env], name="wide", kind=CredentialKind.VAULT_PASSWORD, value="vault-a")
    narrow = _create(
        [local_env], name="narrow", kind=CredentialKind.VAULT_PASSWORD, value="vault-b"
    )
    narrow.actions.set([action])

    assert credentials_for_run(action=action, environment=local_env) == [narrow]

    twin = _create([local_env], name="twin", kind=CredentialKind.VAULT_PASSWORD, value="vault-c")
    twin.actions.set([action])
    with pytest.raises(CredentialConflict) as conflict:
        credentials_for_run(action=action, environment=local_env)
    assert "'narrow', 'twin'" in str(conflict.value)


def test_a_launch_copies_the_credentials_encrypted_onto_the_run(local_env, dev):
    _create([local_env])
    action = ActionFactory(environments=[local_env])

    with queue_held():
        run = launch(
            user=dev,
            action=action,
            environment=local_env,
            parameters={},
        )

    run.refresh_from_db()
    assert run.credentials == [{"name": "db", "kind": "secret_variable", "variable": "db_password"}]
    assert SECRET not in run.secret_credentials
    assert services.run_credentials(run=run)[0]["secret"] == SECRET
    requested = AuditEvent.objects.get(verb="run.requested")
    assert requested.details["credentials"] == ["db"]
    assert SECRET not in json.dumps(list(AuditEvent.objects.values()), default=str)


@pytest.mark.parametrize("clash", ["conflict", "form field"])
def test_a_launch_is_refused_when_the_credentials_are_ambiguous(local_env, dev, clash):
    _create([local_env], name="one")
    if clash == "conflict":
        _create([local_env], name="two")
        form = []
    else:
        form = [{"name": "db_password", "type": "secret"}]
    action = ActionFactory(environments=[local_env], form=form)

    with pytest.raises(services.LaunchRefused) as refused:
        launch(
            user=dev,
            action=action,
            environment=local_env,
            parameters={},
        )

    assert refused.value.status == 409
    assert "db_password" in refused.value.reason
    assert not Run.objects.exists()
    assert AuditEvent.objects.filter(verb="run.refused").exists()
