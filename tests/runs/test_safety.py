"""Nothing leaks, nothing is injected, nothing escapes the checkout: real worker, real
ansible-runner, a real SSH target."""

import json
import os
import stat
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection

from apps.audit.constants import Via
from apps.catalog.models import PlaybookSource, PlaybookVersion
from apps.catalog.services import playbook_version_approve, playbook_version_pin, source_sync
from apps.runs import runner
from apps.runs.constants import RunStatus
from apps.runs.events import MASK
from apps.runs.models import Run, RunEvent
from tests.clients import api_client, api_launch
from tests.conftest import git_repo, wait_for
from tests.factories import ActionFactory
from tests.runs.helpers import launch, ssh_credentials, wait_final, wait_private_dirs_removed

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

TEMPLATE = "{{ lookup('pipe', 'touch %s') }}"
BIG_FILE = 200 * 1024 * 1024


# --- nothing leaks ------------------------------------------------------------------
def _needles(secrets: list[str]) -> list[str]:
    """What to look for: each secret, and each long line of a multi-line one (a key)."""
    found = set()
    for secret in secrets:
        found.add(secret)
        found.update(
            line for line in secret.splitlines() if len(line) >= 20 and "-----" not in line
        )
    return sorted(found)


def _file_hits(root: Path, needles: list[str], *, since: float = 0) -> list[str]:
    """Regular files under `root` (FIFOs and sockets are not opened), changed since
    `since`, holding a needle."""
    raw = [n.encode() for n in needles]
    hits = []
    walk = [(str(root.parent), [], [root.name])] if root.is_file() else os.walk(root)
    for folder, _, files in walk:
        for name in files:
            path = Path(folder) / name
            try:
                info = path.lstat()
                if not stat.S_ISREG(info.st_mode) or info.st_size > BIG_FILE:
                    continue
                if info.st_mtime < since:
                    continue
                content = path.read_bytes()
            except OSError:
                continue  # gone meanwhile, or not ours to read
            hits += [f"{path}: {n.decode()[:12]}…" for n in raw if n in content]
    return hits


def _database_hits(needles: list[str]) -> list[str]:
    """A full dump: every row of every table, as text."""
    hits = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            for row in cursor.fetchall():
                text = " ".join(
                    bytes(cell).decode(errors="replace")
                    if isinstance(cell, bytes | memoryview)
                    else str(cell)
                    for cell in row
                )
                hits += [f"{table}: {n[:12]}…" for n in needles if n in text]
    return hits


def test_no_secret_of_a_run_is_left_anywhere(
    celery_worker, test_playbooks, ssh_target, local_env, dev, ops, tmp_path
):
    """Deploys over SSH with every kind of credential and a secret field, one that
    succeeds and one that fails printing them; then the database, var/, the temp
    directory and the worker's log are searched for every secret value."""
    (tmp_path / "target").mkdir()
    local_env.inventory = ssh_target.inventory(str(tmp_path / "target"))
    local_env.inventory["web"]["vars"]["hold_seconds"] = 4
    local_env.save()
    token, become = f"tok-{uuid.uuid4().hex}", f"bec-{uuid.uuid4().hex}"
    ssh_credentials(ssh_target, local_env, ops, token=token, become=become)
    field_secret = f"fld-{uuid.uuid4().hex}"
    action = ActionFactory(
        playbook_version=test_playbooks["ssh_deploy"],
        environments=[local_env],
        form=[
            {"name": "version", "type": "string", "required": True},
            {"name": "db_password", "type": "secret"},
        ],
    )
    secrets = [
        token,
        become,
        field_secret,
        ssh_target.vault_password,
        ssh_target.private_key,
        ssh_target.passphrase,
    ]
    needles = _needles(secrets)
    started = time.time() - 1

    run = launch(dev, action, local_env, {"version": "1.0.0", "db_password": field_secret})

    # While it runs: only the extra vars file (0600) holds secrets, and only those
    # that are extra vars; the playbook's processes do not get the portal's secrets.
    def processes():
        run.refresh_from_db()
        return runner.run_processes(run.marker) if run.marker else []

    wait_for(processes, timeout=60, message="the run's processes never started")
    private = next(settings.RUNS_TMP_DIR.glob(f"run-{run.pk}-*"))
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    extravars = private / "env" / "extravars"
    # Passwords, the key and its passphrase are never in a file; extra vars (secret
    # variables and fields) are in env/extravars, 0600. The only other place they may
    # pass through is ansible-runner's event files (0600 too), each read and removed
    # within moments by the runner.
    assert (
        _file_hits(
            private,
            _needles(
                [become, ssh_target.vault_password, ssh_target.private_key, ssh_target.passphrase]
            ),
        )
        == []
    )
    events = private / "artifacts" / "run" / "job_events"
    for path in _file_hits(private, _needles([token, field_secret])):
        assert path.startswith((f"{extravars}: ", f"{events}/")), path
    assert {h.split(": ")[1] for h in _file_hits(extravars, needles)} == {
        f"{token[:12]}…",
        f"{field_secret[:12]}…",
    }
    assert stat.S_IMODE(extravars.stat().st_mode) == 0o600
    assert not (private / "env" / "passwords").exists()
    assert not (private / "env" / "ssh_key").exists()
    command = json.loads((private / "artifacts" / "run" / "command").read_text())
    assert command["env"]["SECRET_KEY"] == "" and command["env"]["DATABASE_URL"] == ""
    environments = []
    for proc in processes():
        try:
            environments.append(proc.environ())
        except psutil.Error:
            continue  # ended meanwhile
    assert environments, "no process of the run was found"
    for environ in environments:
        assert environ.get("SECRET_KEY") == ""
        assert environ.get("FIELD_ENCRYPTION_KEY", "") == ""
        assert not [n for n in needles if any(n in value for value in environ.values())]
    run = wait_final(run)
    assert run.status == RunStatus.SUCCESSFUL, run.error

    failing = ActionFactory(
        service=action.service,
        playbook_version=test_playbooks["echo"],
        environments=[local_env],
        form=[{"name": "message", "type": "string"}, {"name": "token", "type": "secret"}],
    )
    local_env.inventory["web"]["vars"]["out_file"] = "/nonexistent/dir/out"
    local_env.save()
    failed = wait_final(
        launch(dev, failing, local_env, {"message": "failing on purpose", "token": field_secret})
    )
    assert failed.status == RunStatus.FAILED

    output = "".join(RunEvent.objects.values_list("stdout", flat=True))
    assert MASK in output
    wait_private_dirs_removed()
    hits = (
        _database_hits(needles)
        + _file_hits(settings.VAR_DIR, needles)
        + _file_hits(celery_worker.log, needles)
        # Of the whole machine's temp directory, what changed while the runs went.
        + _file_hits(Path(tempfile.gettempdir()), needles, since=started)
        + _file_hits(Path.home() / ".ansible", needles, since=started)
    )
    assert hits == []


# --- no injection ----------------------------------------------------------------------
def test_form_values_of_every_type_arrive_as_text_never_templated(
    celery_worker, test_playbooks, local_env, dev, tmp_path
):
    canary = tmp_path / "canary"
    template = TEMPLATE % canary
    action = ActionFactory(
        playbook_version=test_playbooks["inject"],
        environments=[local_env],
        form=[
            {"name": "text", "type": "string"},
            {"name": "number", "type": "integer"},
            {"name": "flag", "type": "boolean"},
            {"name": "pick", "type": "choice", "choices": [template, "plain"]},
            {"name": "picks", "type": "multi-choice", "choices": [template, "{% raw %}x"]},
            {"name": "password", "type": "secret"},
        ],
    )
    local_env.inventory["all"]["vars"] = {"out_file": str(tmp_path / "out.json")}
    local_env.save()
    sent = {
        "text": template,
        "number": 7,
        "flag": True,
        "pick": template,
        "picks": [template, "{% raw %}x"],
        "password": template,
    }

    run = wait_final(launch(dev, action, local_env, sent))

    assert run.status == RunStatus.SUCCESSFUL, run.error
    assert json.loads((tmp_path / "out.json").read_text()) == sent
    assert not canary.exists(), "a form value was run as a template"


@pytest.mark.parametrize(("field", "kind"), [("number", "integer"), ("flag", "boolean")])
def test_typed_fields_refuse_a_template_with_a_message(local_env, dev, field, kind):
    action = ActionFactory(environments=[local_env], form=[{"name": field, "type": kind}])

    response = api_launch(
        api_client(dev),
        local_env,
        action=action,
        parameters={field: "{{ lookup('pipe', 'id') }}"},
    )

    assert response.status_code == 400
    assert response.json()["errors"]["parameters"][field]
    assert not Run.objects.exists()


# --- nothing escapes the checkout --------------------------------------------------------
@pytest.mark.parametrize("path", ["../outside.yml", "/etc/hostname", "sub/../../outside.yml"])
def test_a_playbook_path_outside_the_checkout_cannot_be_pinned(test_playbooks, path):
    source = test_playbooks["echo"].source

    with pytest.raises(ValidationError) as refused:
        playbook_version_pin(source=source, commit="main", path=path)

    assert "path" in refused.value.message_dict


def test_a_source_with_a_symlink_out_of_the_checkout_is_refused(db, ops, tmp_path):
    repo = git_repo(tmp_path / "evil", {"site.yml": "- hosts: all\n  tasks: []\n"})
    (repo / "secrets").symlink_to("/etc")
    git_repo(repo, {})
    source = PlaybookSource.objects.create(name="evil", url=str(repo))

    with pytest.raises(ValidationError) as refused:
        source_sync(source=source, acting_user=ops, via=Via.CLI)

    assert "Refused to export" in str(refused.value)
    assert not PlaybookVersion.objects.filter(source=source).exists()


@pytest.mark.parametrize("path", ["../echo.yml", "/etc/hostname"])
def test_a_forged_playbook_path_runs_nothing_outside_the_checkout(
    celery_worker, test_playbooks, local_env, dev, path
):
    """A version row forged past the checks still runs nothing outside the exported tree."""
    good = test_playbooks["echo"]
    version = PlaybookVersion.objects.create(
        source=good.source, commit=good.commit, path=path, content_hash=good.content_hash
    )
    playbook_version_approve(version=version, acting_user=None, via=Via.CLI)
    action = ActionFactory(playbook_version=version, environments=[local_env])

    run = wait_final(launch(dev, action, local_env))

    assert run.status == RunStatus.FAILED
    assert f"Refused playbook path {path!r}" in run.error
    assert not RunEvent.objects.filter(run=run).exists()


def test_a_forged_version_with_a_symlink_out_is_refused_at_export(
    celery_worker, local_env, dev, tmp_path
):
    repo = git_repo(tmp_path / "evil", {"site.yml": "- hosts: all\n  tasks: []\n"})
    (repo / "outside").symlink_to("/etc")
    commit = git_repo(repo, {}) and _head(repo)
    source = PlaybookSource.objects.create(name="evil", url=str(repo))
    with pytest.raises(ValidationError):
        source_sync(source=source, acting_user=None, via=Via.CLI)  # fetched, then refused
    version = PlaybookVersion.objects.create(
        source=source, commit=commit, path="site.yml", content_hash="0" * 64
    )
    playbook_version_approve(version=version, acting_user=None, via=Via.CLI)
    action = ActionFactory(playbook_version=version, environments=[local_env])

    run = wait_final(launch(dev, action, local_env))

    assert run.status == RunStatus.FAILED
    assert "Refused to export" in run.error
    wait_private_dirs_removed()


def _head(repo: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
