"""Signed checkpoints, published outside the database, checkable with the public key alone."""

import base64
import json
import os
import stat
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from io import StringIO
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command

from apps.audit.models import AuditCheckpoint
from apps.audit.tasks import audit_chain_verify, audit_checkpoint
from tests.audit.conftest import record
from tests.audit.database import chain_rewrite
from tests.conftest import BASE, _database_url

pytestmark = pytest.mark.django_db


@pytest.fixture
def key(settings, tmp_path):
    from apps.audit.checkpoints import key_generate

    private, public = key_generate()
    settings.AUDIT_SIGNING_KEY, settings.AUDIT_PUBLIC_KEY = private, ""
    settings.AUDIT_CHECKPOINT_FILE = str(tmp_path / "published" / "checkpoints.jsonl")
    settings.AUDIT_CHECKPOINT_WEBHOOK = ""
    return public


@pytest.fixture
def webhook():
    """A loopback HTTP server that keeps what is POSTed to it."""
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/checkpoints", received
    server.shutdown()


def sign(*args) -> str:
    out = StringIO()
    call_command("audit_checkpoint", *args, stdout=out)
    return out.getvalue()


def test_it_signs_the_head_and_appends_it_to_the_file(key, settings):
    record(), record()
    head = record()

    out = sign()
    sign()

    lines = Path(settings.AUDIT_CHECKPOINT_FILE).read_text().splitlines()
    assert len(lines) == 2
    checkpoint = json.loads(lines[0])
    assert (checkpoint["sequence"], checkpoint["hash"]) == (head.id, head.hash)
    assert f"Checkpoint #{head.id} {head.hash}" in out and "Published to file:" in out
    assert AuditCheckpoint.objects.count() == 2


def test_anyone_checks_a_checkpoint_with_the_public_key_alone(key, settings):
    record()
    pem = StringIO()
    call_command("audit_checkpoint", "--public-key", stdout=pem, stderr=StringIO())
    sign()
    checkpoint = json.loads(Path(settings.AUDIT_CHECKPOINT_FILE).read_text().splitlines()[0])

    # Only `cryptography` and the public key's PEM, as the README shows.
    public = load_pem_public_key(pem.getvalue().encode())
    message = "pushbutton-audit-checkpoint:v1:{sequence}:{hash}:{time}".format(**checkpoint)
    assert isinstance(public, Ed25519PublicKey)
    public.verify(base64.b64decode(checkpoint["signature"]), message.encode())  # raises if forged
    with pytest.raises(Exception):  # noqa: B017 (InvalidSignature)
        public.verify(
            base64.b64decode(checkpoint["signature"]), message.replace(":v1:", ":v1:9").encode()
        )


def test_it_posts_the_checkpoint_to_a_webhook(key, settings, webhook):
    url, received = webhook
    settings.AUDIT_CHECKPOINT_WEBHOOK = url
    head = record()

    out = sign()

    assert [(c["sequence"], c["hash"]) for c in received] == [(head.id, head.hash)]
    assert f"Published to webhook:{url}" in out


def test_a_webhook_that_does_not_answer_is_an_error_but_the_file_is_written(key, settings):
    settings.AUDIT_CHECKPOINT_WEBHOOK = "http://127.0.0.1:9/nothing-listens-here"
    record()

    with pytest.raises(CommandError, match=r"Not published: webhook http://127\.0\.0\.1:9/"):
        sign()

    checkpoint = AuditCheckpoint.objects.get()
    assert checkpoint.published_to == [f"file:{settings.AUDIT_CHECKPOINT_FILE}"]
    assert checkpoint.publish_errors


def test_without_a_key_it_says_how_to_make_one(settings):
    settings.AUDIT_SIGNING_KEY = ""

    with pytest.raises(CommandError, match="audit_checkpoint --generate-key"):
        sign()


def test_a_key_that_is_not_one_is_a_clear_error(settings):
    settings.AUDIT_SIGNING_KEY = "not-a-key"

    with pytest.raises(CommandError, match="PEM text or the base64 of its 32 raw bytes"):
        sign()


def test_it_generates_a_key_that_signs(settings, tmp_path):
    out = sign("--generate-key")

    settings.AUDIT_SIGNING_KEY = out.splitlines()[0].removeprefix("AUDIT_SIGNING_KEY=")
    settings.AUDIT_CHECKPOINT_FILE = str(tmp_path / "c.jsonl")
    assert "BEGIN PUBLIC KEY" in out
    assert "Checkpoint #" in sign()


def test_celery_beat_signs_and_verifies_periodically(key, settings):
    schedule = django_settings.CELERY_BEAT_SCHEDULE
    assert schedule["audit-checkpoint"]["task"] == "apps.audit.tasks.audit_checkpoint"
    assert schedule["audit-verify"]["task"] == "apps.audit.tasks.audit_chain_verify"
    record()

    audit_checkpoint()
    audit_chain_verify()

    from apps.audit.models import AuditVerification

    assert AuditCheckpoint.objects.count() == 1
    assert AuditVerification.objects.get().checkpoints_checked == 1


# --- the embedded default, out of the box --------------------------------------------
def manage(*args: str, var_dir: Path) -> subprocess.CompletedProcess:
    """`manage.py ARGS` as a fresh install runs it: its own var/, no AUDIT_* setting, on
    this test's database."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AUDIT_")}
    env.update(VAR_DIR=str(var_dir), DATABASE_URL=_database_url())
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_a_fresh_install_makes_its_signing_key_once_and_keeps_it_to_its_owner(tmp_path):
    first = manage("audit_checkpoint", "--public-key", var_dir=tmp_path)
    second = manage("audit_checkpoint", "--public-key", var_dir=tmp_path)

    assert first.returncode == 0, first.stderr
    assert "BEGIN PUBLIC KEY" in first.stdout and first.stdout == second.stdout
    key_file = tmp_path / "audit_signing_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


@pytest.mark.django_db(transaction=True)
def test_on_a_fresh_install_a_rewritten_chain_fails_against_the_checkpoint(tmp_path):
    """No AUDIT_SIGNING_KEY, no AUDIT_CHECKPOINT_FILE: the periodic task still signs the
    head into var/audit-checkpoints.jsonl, so whoever rewrites the chain in the database
    (triggers dropped, rows hashed again, head moved) is caught by verify_audit."""
    log = [record(verb=f"test.row{n}") for n in range(6)]
    signed = manage(
        "shell", "-c", "from apps.audit.tasks import audit_checkpoint; audit_checkpoint()",
        var_dir=tmp_path,
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    lines = (tmp_path / "audit-checkpoints.jsonl").read_text().splitlines()
    assert [json.loads(line)["sequence"] for line in lines] == [log[-1].id]
    intact = manage("verify_audit", var_dir=tmp_path)
    assert intact.returncode == 0, intact.stderr
    assert "Checked 1 signed checkpoint(s)" in intact.stdout

    chain_rewrite(log[2].id)
    rewritten = manage("verify_audit", var_dir=tmp_path)

    assert rewritten.returncode == 1
    assert f"row #{log[-1].id}: its hash differs from the one signed at" in rewritten.stderr
