"""Deploys to a real OpenSSH server on loopback, with credentials, through a real worker."""

import re
import uuid

import pytest
from playwright.sync_api import expect

from apps.runs import runner
from apps.runs.constants import RunStatus
from apps.runs.events import MASK
from apps.runs.models import RunEvent
from tests.factories import PASSWORD, ActionFactory
from tests.runs.helpers import launch, ssh_credentials, wait_final

VERSION_FORM = [{"name": "version", "type": "string", "required": True}]


@pytest.fixture
def ssh_env(ssh_target, local_env, tmp_path):
    """`local_env` pointed at the SSH target; its releases go to tmp_path/target."""
    (tmp_path / "target").mkdir()
    local_env.inventory = ssh_target.inventory(str(tmp_path / "target"))
    local_env.save()
    return local_env


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_it_deploys_over_ssh_with_every_kind_of_credential(
    celery_worker, test_playbooks, ssh_target, ssh_env, dev, ops, tmp_path
):
    token = f"token-{uuid.uuid4().hex}"
    ssh_credentials(ssh_target, ssh_env, ops, token=token, become=f"become-{uuid.uuid4().hex}")
    action = ActionFactory(
        playbook_version=test_playbooks["ssh_deploy"], environments=[ssh_env], form=VERSION_FORM
    )

    run = launch(
        user=dev,
        action=action,
        environment=ssh_env,
        parameters={"version": "2.0.0"},
    )
    run = wait_final(run)

    assert run.status == RunStatus.SUCCESSFUL, run.error
    assert run.host_summary["ssh-target"]["failed"] == 0
    assert [c["name"] for c in run.credentials] == ["api token", "become", "deploy key", "vault"]
    assert run.secret_credentials == ""  # erased when it ended
    # Written on the target by the SSH session (SSH_CONNECTION names the server's port).
    written = (tmp_path / "target" / "VERSION").read_text()
    assert written == f"2.0.0 via {ssh_target.port}\n"
    assert re.search(
        rf"Accepted publickey for {ssh_target.user} from 127\.0\.0\.1", ssh_target.log.read_text()
    )
    output = "".join(RunEvent.objects.filter(run=run).values_list("stdout", flat=True))
    assert f"token={MASK}" in output
    assert token not in output


@pytest.mark.browser
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_developer_deploys_to_the_ssh_target_from_the_browser(
    page, live_server, celery_worker, test_playbooks, ssh_target, ssh_env, dev, ops, tmp_path
):
    ssh_credentials(ssh_target, ssh_env, ops, token="browser-token", become="browser-become")
    action = ActionFactory(
        playbook_version=test_playbooks["ssh_deploy"],
        environments=[ssh_env],
        form=VERSION_FORM,
        label="Deploy",
        slug="deploy",
    )
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label(re.compile("Username or email", re.I)).fill("dev")
    page.get_by_label(re.compile("^Password", re.I)).fill(PASSWORD)
    page.get_by_role("button", name=re.compile("Sign in", re.I)).click()

    page.goto(f"{live_server.url}/services/{action.service.slug}/deploy/{ssh_env.slug}/")
    page.get_by_label("Version").fill("3.1.4")
    page.get_by_role("button", name=re.compile("^Deploy ")).click()
    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))

    status = page.locator("#run-status [data-status]")
    expect(status).to_have_attribute("data-status", "successful", timeout=120_000)
    expect(page.locator("#log")).to_contain_text(
        "TASK [Install the release (as root, through become)]"
    )
    expect(page.locator(".credentials")).to_contain_text("deploy key")
    assert (tmp_path / "target" / "VERSION").read_text() == f"3.1.4 via {ssh_target.port}\n"


@pytest.mark.parametrize("depth", [1, 8])
def test_the_key_s_passphrase_prompt_is_answered_however_deep_the_private_dir(depth):
    """ansible-runner looks for prompts in the last 100 characters of output only."""
    private = "/var" + "/a-rather-long-folder-name" * depth + "/runs-tmp/run-12-abcdefgh"
    prompt = f"Enter passphrase for {private}/artifacts/run/ssh_key_data: "
    found = re.compile(runner.PASSPHRASE_PROMPT, re.M).search(prompt[-100:])

    assert found is not None
    assert re.compile(runner.PASSPHRASE_PROMPT, re.M).search("ok: [web1] => ssh_key_data") is None
