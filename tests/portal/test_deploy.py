"""The production set-up files of deploy/: systemd accepts the units (systemd-analyze
verify, through deploy/verify-units as CI runs it), and they start what the project has."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import BASE

DEPLOY = BASE / "deploy"
VERIFY = DEPLOY / "verify-units"
needs_systemd = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed: the units cannot be verified here",
)


def verify(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(VERIFY), str(folder)], capture_output=True, text=True, timeout=120)


@needs_systemd
def test_systemd_verifies_the_units():
    result = verify(DEPLOY)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    for unit in ("pushbutton-web.service", "pushbutton-beat.service", "pushbutton-worker@"):
        assert unit in result.stdout


@needs_systemd
@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        # A binary the venv does not have.
        (("/.venv/bin/gunicorn ", "/.venv/bin/gunicron "), "is not executable"),
        # A misspelt setting, which systemd would ignore with a mere warning.
        (("Restart=on-failure", "Restrat=on-failure"), "Unknown key"),
    ],
)
def test_a_broken_unit_fails_the_check(tmp_path, change, complaint):
    for unit in DEPLOY.glob("*.service"):
        shutil.copy(unit, tmp_path / unit.name)
    web = tmp_path / "pushbutton-web.service"
    assert change[0] in web.read_text()
    web.write_text(web.read_text().replace(*change))

    result = verify(tmp_path)

    assert result.returncode == 1
    assert complaint in result.stderr


def test_the_units_start_the_project_s_own_commands():
    web = (DEPLOY / "pushbutton-web.service").read_text()
    worker = (DEPLOY / "pushbutton-worker@.service").read_text()
    beat = (DEPLOY / "pushbutton-beat.service").read_text()

    assert "/.venv/bin/gunicorn portal.wsgi" in web
    assert (BASE / "portal" / "wsgi.py").exists()
    assert "/.venv/bin/celery -A portal worker" in worker
    # The instance is the queue, and the name stays the same across restarts (systemd's
    # %H: the host), so a worker that comes back ends its predecessor's runs as lost.
    assert "-Q %i -n pushbutton-%i@%H" in worker
    assert "/.venv/bin/celery -A portal beat" in beat


def test_every_setting_of_the_environment_file_is_in_the_readme():
    readme = (BASE / "README.md").read_text()
    example = (DEPLOY / "pushbutton.env.example").read_text()
    names = re.findall(r"^#?([A-Z][A-Z0-9_]+)=", example, re.M)

    assert "SECRET_KEY" in names and "METRICS_TOKEN" in names
    assert [name for name in names if f"`{name}`" not in readme] == []
