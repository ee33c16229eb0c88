"""Inventories kept in the playbook repository: a real repository on disk holds a
playbook and its inventories (an INI file, a directory with group_vars); a real run on
the worker deploys to the hosts of that file; the admin shows what it resolves to and
refuses a path that is not in the tree."""

import sys

import pytest
from django.conf import settings

from apps.audit.constants import Via
from apps.audit.models import AuditEvent
from apps.catalog.models import PlaybookSource
from apps.catalog.services import playbook_version_approve, source_sync
from apps.runs.constants import RunStatus
from apps.runs.models import Run
from tests.clients import api_client, api_launch, page_client
from tests.conftest import git_repo
from tests.factories import ActionFactory
from tests.runs.helpers import launch, queue_held, wait_final

PLAYBOOK = """\
- name: Deploy
  hosts: web
  gather_facts: false
  tasks:
    - name: Write which host ran
      ansible.builtin.copy:
        dest: "{{ out_dir }}/{{ inventory_hostname }}"
        content: "{{ greeting | default('hello') }}"
        mode: "0600"
"""
LOCAL = f"ansible_connection=local ansible_python_interpreter={sys.executable}"
INI = f"[web]\nweb-a {LOCAL}\nweb-b {LOCAL}\n\n[db]\ndb-1 {LOCAL}\n"
YAML_HOSTS = f"""\
web:
  hosts:
    qa-web:
      ansible_connection: local
      ansible_python_interpreter: {sys.executable}
"""


@pytest.fixture
def inventory_source(ops):
    """A synced source whose approved version holds site.yml and its inventories."""
    repo = git_repo(
        settings.VAR_DIR / "inventory-repo",
        {
            "site.yml": PLAYBOOK,
            "inventories/test.ini": INI,
            "inventories/qa/hosts.yml": YAML_HOSTS,
            "inventories/qa/group_vars/web.yml": "greeting: from the qa group_vars\n",
        },
    )
    source, _ = PlaybookSource.objects.get_or_create(name="ops-repo", url=str(repo))
    source_sync(source=source, acting_user=ops, via=Via.CLI)
    version = source.versions.get(path="site.yml")
    playbook_version_approve(version=version, acting_user=ops, via=Via.CLI)
    return version


def _in_source(environment, version, path):
    environment.inventory = {}
    environment.inventory_source = version.source
    environment.inventory_path = path
    environment.full_clean()
    environment.save()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("path", "hosts", "content"),
    [
        ("inventories/test.ini", ["web-a", "web-b"], "hello"),
        ("inventories/qa", ["qa-web"], "from the qa group_vars"),
    ],
)
def test_a_run_deploys_to_the_hosts_of_the_repository_inventory(
    celery_worker, inventory_source, local_env, dev, tmp_path, path, hosts, content
):
    _in_source(local_env, inventory_source, path)
    action = ActionFactory(
        playbook_version=inventory_source,
        environments=[local_env],
        form=[{"name": "out_dir", "type": "string"}],
    )

    run = wait_final(launch(dev, action, local_env, {"out_dir": str(tmp_path)}))

    assert run.status == RunStatus.SUCCESSFUL, run.error
    assert run.inventory_path == path
    assert sorted(run.host_summary) == hosts
    assert sorted(p.name for p in tmp_path.iterdir()) == hosts
    assert all((tmp_path / host).read_text() == content for host in hosts)
    page = page_client(dev).get(f"/runs/{run.pk}/").content.decode()
    assert f"<code>{path}</code> @ <code>{inventory_source.commit[:10]}</code>" in page


def _admin_post(client, environment, **fields):
    return client.post(
        f"/admin/environments/environment/{environment.pk}/change/",
        {
            "name": environment.name, "slug": environment.slug, "order": environment.order,
            "description": "", "queue": environment.queue, "when_locked": "refuse",
            **fields,
        },
    )  # fmt: skip


def test_the_admin_shows_the_hosts_the_inventory_resolves_to(
    inventory_source, local_env, ops_client
):
    response = _admin_post(
        ops_client,
        local_env,
        inventory="{}",
        inventory_source=inventory_source.source.pk,
        inventory_path="inventories/test.ini",
    )
    assert response.status_code == 302, response.content.decode()[-3000:]

    page = ops_client.get(f"/admin/environments/environment/{local_env.pk}/change/")

    text = page.content.decode()
    assert f"site.yml @ {inventory_source.commit[:10]}" in text
    assert "3 hosts" in text
    for host, groups in (("web-a", "web"), ("web-b", "web"), ("db-1", "db")):
        assert f"<tr><td>{host}</td><td>{groups}</td></tr>" in text
    local_env.refresh_from_db()
    assert (local_env.inventory, local_env.inventory_path) == ({}, "inventories/test.ini")
    audit = AuditEvent.objects.filter(object_type="environments.environment").last()
    assert audit.details["changes"]["inventory_path"] == ["", "inventories/test.ini"]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("inventories/missing.ini", "No file or directory &#x27;inventories/missing.ini&#x27;"),
        ("../outside.ini", "A path inside the repository (a file or a directory), without"),
        ("/etc/hosts", "A path inside the repository (a file or a directory), without"),
    ],
)
def test_a_path_not_in_the_tree_is_refused(inventory_source, local_env, ops_client, path, message):
    before = local_env.inventory

    response = _admin_post(
        ops_client,
        local_env,
        inventory="{}",
        inventory_source=inventory_source.source.pk,
        inventory_path=path,
    )

    assert response.status_code == 200
    assert message in response.content.decode()
    local_env.refresh_from_db()
    assert (local_env.inventory, local_env.inventory_path) == (before, "")


def test_an_inventory_is_json_or_a_path_never_both(inventory_source, local_env, ops_client):
    response = _admin_post(
        ops_client,
        local_env,
        inventory='{"all": {"hosts": {"localhost": {}}}}',
        inventory_source=inventory_source.source.pk,
        inventory_path="inventories/test.ini",
    )

    assert response.status_code == 200
    assert "not both" in response.content.decode()


def test_a_playbook_of_another_source_cannot_run_there(inventory_source, local_env, dev):
    _in_source(local_env, inventory_source, "inventories/test.ini")
    elsewhere = ActionFactory(environments=[local_env])  # a playbook of another source

    with queue_held():
        response = api_launch(api_client(dev), local_env, action=elsewhere)

    assert response.status_code == 409
    assert response.json()["detail"] == (
        f"The inventory of {local_env} is inventories/test.ini in the source ops-repo, but "
        f"{elsewhere.label} runs a playbook of {elsewhere.playbook_version.source}: Ops must "
        "keep them in one repository."
    )
    assert not Run.objects.exists()
