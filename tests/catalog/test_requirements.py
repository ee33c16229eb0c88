"""Roles and collections from requirements.yml, and submodules: pinned and hashed at sync,
run exactly as approved (real git repositories on disk, real ansible-galaxy, a real worker
running real ansible-runner)."""

import hashlib
import shutil

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.urls import reverse

from apps.audit.constants import Via
from apps.audit.models import AuditEvent
from apps.catalog import git
from apps.catalog.models import PlaybookSource, PlaybookVersion
from apps.catalog.requirements import requirements_key
from apps.catalog.services import (
    playbook_version_approve,
    playbook_version_pin,
    source_sync,
)
from apps.runs.constants import RunStatus
from apps.runs.models import RunEvent
from tests.catalog import reqs_repos
from tests.conftest import git_repo
from tests.factories import ActionFactory
from tests.runs.helpers import launch, wait_final


@pytest.fixture(scope="module")
def repos(tmp_path_factory):
    return reqs_repos.build(tmp_path_factory.mktemp("reqs"))


def _synced(ops, url: str, name: str = "ops-repo") -> PlaybookSource:
    source = PlaybookSource.objects.create(name=name, url=str(url))
    source_sync(source=source, acting_user=ops, via=Via.CLI)
    return source


def _output(run) -> str:
    return "".join(
        RunEvent.objects.filter(run=run).order_by("counter").values_list("stdout", flat=True)
    )


def _approved_action(ops, repos, local_env):
    version = _synced(ops, repos.playbooks).versions.get(path="deploy.yml")
    playbook_version_approve(version=version, acting_user=ops, via=Via.CLI)
    return ActionFactory(playbook_version=version, environments=[local_env])


# --- at sync -----------------------------------------------------------------------------
@pytest.mark.django_db
def test_sync_pins_each_source_and_hashes_what_it_installed(ops, ops_client, repos):
    version = _synced(ops, repos.playbooks).versions.get(path="deploy.yml")

    lock = version.requirements
    assert lock["roles"] == [
        {"name": "hello", "git": f"file://{repos.role}", "ref": "v1.0", "commit": repos.role_commit}
    ]
    tarball_sha = hashlib.sha256(repos.tarball.read_bytes()).hexdigest()
    assert lock["collections"] == [{"archive": str(repos.tarball), "sha256": tarball_sha}]
    installed = settings.REQUIREMENTS_DIR / requirements_key(lock)
    assert (installed / "roles/hello/tasks/main.yml").is_file()
    assert (
        installed / "collections/ansible_collections/pb/tools/plugins/modules/greet.py"
    ).is_file()
    assert git.tree_hash(installed) == lock["hash"]
    # Neither the git role's tree nor the submodule's files alone make the hash.
    assert version.content_hash not in (lock["hash"], git.tree_hash(repos.playbooks))
    # Ops sees the pins before approving.
    page = ops_client.get(reverse("admin:catalog_playbookversion_change", args=[version.pk]))
    assert repos.role_commit in page.content.decode()
    assert tarball_sha in page.content.decode()
    # and the audit log keeps what an approval approved.
    playbook_version_approve(version=version, acting_user=ops, via=Via.CLI)
    approval = AuditEvent.objects.get(verb="playbook_version.approve", object_id=str(version.pk))
    assert approval.details["requirements"]["roles"][0]["commit"] == repos.role_commit
    assert approval.details["requirements"]["hash"] == lock["hash"]


@pytest.mark.django_db
def test_the_hash_changes_when_a_requirement_resolves_to_another_commit(ops, repos, tmp_path):
    role = reqs_repos.role_repo(tmp_path / "moving-role", "first")
    repo = git_repo(
        tmp_path / "moving",
        {
            "site.yml": "- hosts: all\n  gather_facts: false\n  roles: [moving]\n",
            # The top-level file, with roles: (and collections:) keys.
            "requirements.yml": (
                f"roles:\n  - src: git+{role}\n    version: main\n    name: moving\n"
            ),
        },
    )
    source = _synced(ops, repo, name="moving")
    first = source.versions.get()

    reqs_repos.role_repo(role, "second")  # a new commit on the role's branch
    sha, content_hash, lock = playbook_version_pin(source=source, commit="main", path="site.yml")

    assert sha == first.commit
    assert lock["roles"][0]["commit"] == reqs_repos.git(role, "rev-parse", "main")
    assert lock["roles"][0]["commit"] != first.requirements["roles"][0]["commit"]
    assert content_hash != first.content_hash


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("requirements", "message"),
    [
        ("roles/requirements.yml", "roles/requirements.yml: file://{role} at v9:"),
        (
            "collections/requirements.yml",
            "ansible-galaxy collection install failed: [ERROR]: Collection artifact at "
            "'{junk}' is not a valid tar file.",
        ),
    ],
)
def test_a_requirement_that_cannot_be_resolved_fails_the_sync(
    ops, repos, tmp_path, requirements, message
):
    not_a_collection = tmp_path / "junk.tar.gz"
    not_a_collection.write_bytes(b"not a tarball")
    content = {
        "roles/requirements.yml": f"- src: git+file://{repos.role}\n  version: v9\n",
        "collections/requirements.yml": f"collections:\n  - name: {not_a_collection}\n",
    }[requirements]
    repo = git_repo(tmp_path / "broken", {"site.yml": "- hosts: all\n", requirements: content})
    source = PlaybookSource.objects.create(name="broken", url=str(repo))

    with pytest.raises(ValidationError) as failed:
        source_sync(source=source, acting_user=ops, via=Via.CLI)

    expected = message.format(role=repos.role, junk=not_a_collection)
    assert expected in str(failed.value)
    source.refresh_from_db()
    assert expected in source.sync_error
    assert not PlaybookVersion.objects.filter(source=source).exists()


@pytest.mark.django_db
def test_a_submodule_that_cannot_be_fetched_refuses_the_version(ops, repos, tmp_path):
    repo = git_repo(tmp_path / "lost", {"site.yml": "- hosts: all\n  roles: [gone]\n"})
    commit = reqs_repos.git(repos.vendored, "rev-parse", "HEAD")
    reqs_repos.add_submodule(repo, "roles/gone", str(tmp_path / "nowhere"), commit)
    source = PlaybookSource.objects.create(name="lost", url=str(repo))

    with pytest.raises(ValidationError) as refused:
        source_sync(source=source, acting_user=ops, via=Via.CLI)

    assert f"Submodule 'roles/gone' (commit {commit[:10]}) cannot be fetched from" in str(
        refused.value
    )
    assert not PlaybookVersion.objects.filter(source=source).exists()


def test_relative_submodule_urls_are_read_as_git_reads_them():
    assert git.url_join("/srv/git/ops", "../roles/web") == "/srv/git/roles/web"
    assert git.url_join("https://git.example.com/ops/site.git", "./sub") == (
        "https://git.example.com/ops/site.git/sub"
    )
    assert git.url_join("git@example.com:ops/site", "../web") == "git@example.com:ops/web"
    assert git.url_join("/srv/ops", "https://example.com/x.git") == "https://example.com/x.git"


# --- at run time -------------------------------------------------------------------------
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_run_uses_the_approved_roles_collection_and_submodule(
    celery_worker, ops, dev, local_env, repos
):
    action = _approved_action(ops, repos, local_env)

    run = wait_final(launch(dev, action, local_env))

    assert run.status == RunStatus.SUCCESSFUL, run.error
    output = _output(run)
    assert "hello from the git role v1.0" in output
    assert "hello from the vendored submodule" in output
    assert f"pb.tools.greet greets {action.service.slug}" in output


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_tampered_cache_fails_the_run_and_a_missing_one_is_installed_again(
    celery_worker, ops, dev, local_env, repos
):
    action = _approved_action(ops, repos, local_env)
    installed = settings.REQUIREMENTS_DIR / requirements_key(action.playbook_version.requirements)
    tasks = installed / "roles/hello/tasks/main.yml"
    tasks.write_text("- ansible.builtin.debug:\n    msg: not what was approved\n")

    tampered = wait_final(launch(dev, action, local_env))

    assert tampered.status == RunStatus.FAILED
    assert "The roles and collections installed from the requirements changed" in tampered.error
    assert "not what was approved" not in _output(tampered)

    # A worker without the cache (another host) installs the same bytes from the pins.
    shutil.rmtree(installed)
    again = wait_final(launch(dev, action, local_env), timeout=300)  # ansible-galaxy too

    assert again.status == RunStatus.SUCCESSFUL, again.error
    assert "hello from the git role v1.0" in _output(again)
    assert "not what was approved" not in tasks.read_text()
