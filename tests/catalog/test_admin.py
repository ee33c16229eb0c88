"""What Ops does in the admin: sources, playbook versions, actions and their forms."""

import json
import re
import subprocess

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import escape

from apps.audit.constants import Via
from apps.audit.models import AuditEvent
from apps.catalog import git
from apps.catalog.models import Action, PlaybookSource, PlaybookVersion, SourceCommit
from tests.conftest import git_repo
from tests.factories import (
    ActionFactory,
    EnvironmentFactory,
    PlaybookVersionFactory,
    ServiceFactory,
)

PLAY = "- name: Site\n  hosts: all\n  tasks: []\n"
TASKS = "- name: A task\n  ansible.builtin.debug:\n    msg: hi\n"
FILES = {
    "site.yml": PLAY,
    "deploy/web.yml": "- hosts: web\n  roles: [web]\n",
    "roles/web/tasks/main.yml": TASKS,
    "group_vars/all.yml": "port: 80\n",
}
SHA = re.compile(r"[0-9a-f]{40}")
HASH = re.compile(r"[0-9a-f]{64}")


@pytest.fixture
def repo(tmp_path):
    """A playbook repository with two commits; the head adds deploy/web.yml."""
    path = tmp_path / "playbooks"
    git_repo(path, {"site.yml": PLAY.replace("all", "old")})
    return git_repo(path, FILES)


def _shas(repo) -> list[str]:
    out = subprocess.run(
        ["git", "-C", str(repo), "log", "--format=%H", "main"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.split()


def _field_row(response, name: str) -> str:
    """The HTML of the admin form row of field `name` (its input and its errors)."""
    html = response.content.decode()
    row = re.search(rf'<div class="form-row[^"]*\bfield-{name}\b[^"]*">', html)
    assert row, f"no row for {name}"
    end = html.find('<div class="form-row', row.end())
    return html[row.start() : end if end != -1 else None]


def _sync(ops_client, *sources):
    return ops_client.post(
        reverse("admin:catalog_playbooksource_changelist"),
        {"action": "sync", "_selected_action": [s.pk for s in sources]},
        follow=True,
    )


def _synced_source(repo, name="playbooks") -> PlaybookSource:
    source = PlaybookSource.objects.create(name=name, url=str(repo))
    git.mirror_update(source.url, source.mirror_path)
    return source


def _audit(verb: str):
    return list(AuditEvent.objects.filter(verb=verb).order_by("id"))


# --- actions and their forms ------------------------------------------------------
def _action_post(version, environment, **overrides) -> dict:
    data = {
        "service": ServiceFactory(slug="shop").pk,
        "slug": "deploy",
        "label": "Deploy",
        "description": "",
        "kind": "deploy",
        "playbook_version": version.pk,
        "environments": [environment.pk],
        "timeout": "600",
        "form": json.dumps(
            [{"name": "version", "type": "string", "required": True, "pattern": r"\d+\.\d+"}]
        ),
        "version_field": "version",
        "position": "0",
    }
    return {**data, **overrides}


@pytest.mark.parametrize(
    ("form", "message"),
    [
        (
            '[{"name": "ansible_user", "type": "string"}]',
            "fields[0].name: names starting with 'ansible_' or 'pushbutton_' are reserved.",
        ),
        (
            '[{"name": "replicas", "type": "integer", "min": 5, "max": 1}]',
            "fields[0].min: greater than max.",
        ),
        ('{"name": "version", "type": "string"}', "The form must be a list of fields."),
        (
            '[{"name": "version", "type": "string",]',
            "line 1, column 39: Expecting property name enclosed in double quotes",
        ),
        (
            '[\n  {"name": "version",\n   "type": "string"\n   "required": true}\n]',
            "line 4, column 4: Expecting ',' delimiter",
        ),
    ],
)
def test_it_refuses_an_action_with_a_malformed_form_beside_the_field(ops_client, form, message):
    version, env = PlaybookVersionFactory(), EnvironmentFactory(slug="test")

    response = ops_client.post(
        reverse("admin:catalog_action_add"),
        _action_post(version, env, form=form, version_field=""),
    )

    assert response.status_code == 200
    assert escape(message) in _field_row(response, "form")
    assert _field_row(response, "form").startswith('<div class="form-row errors')
    assert not Action.objects.exists()
    assert not _audit("action.create")


def test_it_refuses_a_version_field_the_form_does_not_have(ops_client):
    version, env = PlaybookVersionFactory(), EnvironmentFactory(slug="test")

    response = ops_client.post(
        reverse("admin:catalog_action_add"), _action_post(version, env, version_field="release")
    )

    assert response.status_code == 200
    assert escape("No field named 'release' in the form.") in _field_row(response, "version_field")
    assert not Action.objects.exists()


def test_it_saves_an_action_with_a_valid_form_and_audits_it(ops_client, ops):
    version, env = PlaybookVersionFactory(), EnvironmentFactory(slug="test")

    response = ops_client.post(reverse("admin:catalog_action_add"), _action_post(version, env))

    assert response.status_code == 302
    action = Action.objects.get(slug="deploy")
    assert action.form == [
        {"name": "version", "type": "string", "required": True, "pattern": r"\d+\.\d+"}
    ]
    assert action.playbook_version == version
    assert list(action.environments.all()) == [env]
    [event] = _audit("action.create")
    assert (event.actor_name, event.via, event.object_id) == ("ops", Via.ADMIN, str(action.pk))
    assert event.service == "shop"
    assert event.details["environments"] == ["test"]
    assert event.details["form"] == action.form
    assert event.details["playbook_version"]["content_hash"] == version.content_hash


def test_it_audits_a_change_and_a_deletion_of_an_action(ops_client):
    env, qa = EnvironmentFactory(slug="test"), EnvironmentFactory(slug="qa")
    action = ActionFactory(service=ServiceFactory(slug="shop"), environments=[env])
    data = _action_post(
        action.playbook_version, env, slug=action.slug, environments=[env.pk, qa.pk]
    )

    changed = ops_client.post(reverse("admin:catalog_action_change", args=[action.pk]), data)
    deleted = ops_client.post(
        reverse("admin:catalog_action_delete", args=[action.pk]), {"post": "yes"}
    )

    assert changed.status_code == deleted.status_code == 302
    [update] = _audit("action.update")
    assert update.details["environments"] == ["qa", "test"]
    [delete] = _audit("action.delete")
    assert delete.object_id == str(action.pk) and delete.details["action"] == action.slug
    assert not Action.objects.exists()


def test_it_offers_only_approved_playbook_versions_for_an_action(ops_client):
    approved = PlaybookVersionFactory(path="approved.yml")
    unapproved = PlaybookVersionFactory(path="unapproved.yml", approved_at=None)

    page = ops_client.get(reverse("admin:catalog_action_add"))
    refused = ops_client.post(
        reverse("admin:catalog_action_add"),
        _action_post(unapproved, EnvironmentFactory(slug="test")),
    )

    row = _field_row(page, "playbook_version")
    assert f'<option value="{approved.pk}">' in row
    assert f'value="{unapproved.pk}"' not in row
    assert refused.status_code == 200
    assert "Select a valid choice" in _field_row(refused, "playbook_version")
    assert not Action.objects.exists()


def test_it_refuses_an_action_whose_playbook_version_is_not_approved(db):
    action = ActionFactory(playbook_version=PlaybookVersionFactory(approved_at=None))

    with pytest.raises(ValidationError) as caught:
        action.full_clean()

    assert caught.value.message_dict == {
        "playbook_version": ["Only an approved playbook version can run."]
    }


def test_it_accepts_an_action_whose_playbook_version_is_approved(db):
    action = ActionFactory(form=[{"name": "version", "type": "string"}], version_field="version")

    action.full_clean()


# --- syncing a playbook source -----------------------------------------------------
def test_it_syncs_a_source_from_the_admin(ops_client, repo, ops):
    source = PlaybookSource.objects.create(name="playbooks", url=str(repo))

    response = _sync(ops_client, source)

    assert response.status_code == 200
    head = _shas(repo)[0]
    assert escape(
        f"playbooks: new playbooks deploy/web.yml, site.yml; version {head[:7]} waits for approval."
    ) in (response.content.decode())
    head, first = _shas(repo)
    commits = {c.sha: c for c in SourceCommit.objects.filter(source=source)}
    assert set(commits) == {head, first}
    assert sorted(commits[head].playbooks) == ["deploy/web.yml", "site.yml"]
    assert commits[head].author == "t" and commits[head].message == "test playbooks"
    versions = list(PlaybookVersion.objects.filter(source=source).order_by("path"))
    assert [(v.path, v.commit) for v in versions] == [
        ("deploy/web.yml", head),
        ("site.yml", head),
    ]
    assert all(HASH.fullmatch(v.content_hash) for v in versions)
    assert all(not v.is_approved and v.approved_by is None for v in versions)
    source.refresh_from_db()
    assert source.synced_at is not None and source.sync_error == ""
    [event] = _audit("source.sync")
    assert (event.actor_name, event.via, event.object_id) == ("ops", Via.ADMIN, str(source.pk))
    assert event.details["head"] == head
    assert sorted(event.details["new_versions"]) == sorted(v.pk for v in versions)


def test_it_hashes_what_the_head_commit_holds(ops_client, repo, tmp_path):
    source = PlaybookSource.objects.create(name="playbooks", url=str(repo))
    checkout = tmp_path / "checkout"
    subprocess.run(["git", "clone", "-q", str(repo), str(checkout)], check=True)
    subprocess.run(["rm", "-rf", str(checkout / ".git")], check=True)

    _sync(ops_client, source)

    assert {v.content_hash for v in source.versions.all()} == {git.tree_hash(checkout)}


def test_it_does_not_offer_the_same_version_twice(ops_client, repo):
    source = PlaybookSource.objects.create(name="playbooks", url=str(repo))

    _sync(ops_client, source)
    _sync(ops_client, source)

    assert source.versions.count() == 2
    assert SourceCommit.objects.filter(source=source).count() == 2
    assert [e.details["new_versions"] for e in _audit("source.sync")][1] == []


def test_it_offers_the_playbooks_of_a_new_head_after_a_new_commit(ops_client, repo):
    source = PlaybookSource.objects.create(name="playbooks", url=str(repo))
    _sync(ops_client, source)

    git_repo(repo, {"site.yml": PLAY.replace("Site", "Site v2")})
    _sync(ops_client, source)

    head = _shas(repo)[0]
    assert source.versions.filter(commit=head).count() == 2
    assert source.versions.count() == 4


@pytest.mark.parametrize("url", ["/nonexistent/playbooks.git", "-oProxyCommand=true"])
def test_it_shows_why_a_sync_failed(ops_client, url):
    source = PlaybookSource.objects.create(name="broken", url=url)

    response = _sync(ops_client, source)

    assert response.status_code == 200
    html = response.content.decode()
    assert '<li class="error">' in html
    assert escape("Sync of broken failed:") in html
    source.refresh_from_db()
    assert source.sync_error and source.synced_at is None
    assert not SourceCommit.objects.filter(source=source).exists()
    assert not _audit("source.sync")


def test_it_shows_why_a_sync_failed_on_a_missing_branch(ops_client, repo):
    source = PlaybookSource.objects.create(name="playbooks", url=str(repo), branch="release")

    response = _sync(ops_client, source)

    assert response.status_code == 200
    assert escape("Sync of playbooks failed:") in response.content.decode()
    assert not source.versions.exists()


def test_it_refuses_to_sync_a_head_that_links_outside_the_checkout(ops_client, tmp_path):
    path = tmp_path / "playbooks"
    path.mkdir()
    (path / "hosts.yml").symlink_to("/etc/hosts")
    source = PlaybookSource.objects.create(name="linked", url=str(git_repo(path, FILES)))

    response = _sync(ops_client, source)

    assert response.status_code == 200
    assert escape("Sync of linked failed: Refused to export") in response.content.decode()
    source.refresh_from_db()
    assert "Refused to export" in source.sync_error
    assert not source.versions.exists()
    assert not _audit("source.sync")


# --- adding a playbook version by hand ----------------------------------------------
def _add_version(ops_client, source, commit, path):
    return ops_client.post(
        reverse("admin:catalog_playbookversion_add"),
        {"source": source.pk, "commit": commit, "path": path},
    )


def test_it_pins_a_playbook_version_added_in_the_admin(ops_client, repo, tmp_path):
    source = _synced_source(repo)
    first = _shas(repo)[1]
    checkout = tmp_path / "checkout"
    subprocess.run(["git", "clone", "-q", str(repo), str(checkout)], check=True)
    subprocess.run(["git", "-C", str(checkout), "checkout", "-q", first], check=True)
    subprocess.run(["rm", "-rf", str(checkout / ".git")], check=True)

    response = _add_version(ops_client, source, first[:8], "site.yml")

    assert response.status_code == 302
    version = PlaybookVersion.objects.get(source=source)
    assert version.commit == first and SHA.fullmatch(version.commit)
    assert version.path == "site.yml"
    assert version.content_hash == git.tree_hash(checkout)
    assert not version.is_approved
    [event] = _audit("playbook_version.create")
    assert (event.actor_name, event.via, event.object_id) == ("ops", Via.ADMIN, str(version.pk))
    assert event.details == {
        "commit": first,
        "path": "site.yml",
        "content_hash": version.content_hash,
    }


def test_it_resolves_a_branch_name_to_the_full_sha(ops_client, repo):
    source = _synced_source(repo)

    _add_version(ops_client, source, "main", "deploy/web.yml")

    assert PlaybookVersion.objects.get(source=source).commit == _shas(repo)[0]


@pytest.mark.parametrize("commit", ["0" * 40, "no-such-branch", "--all"])
def test_it_refuses_a_commit_that_does_not_exist_beside_the_field(ops_client, repo, commit):
    source = _synced_source(repo)

    response = _add_version(ops_client, source, commit, "site.yml")

    assert response.status_code == 200
    row = _field_row(response, "commit")
    assert escape(f"Cannot read {commit} from playbooks:") in row
    assert not PlaybookVersion.objects.exists()
    assert not _audit("playbook_version.create")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("roles/web/tasks/main.yml", "roles/web/tasks/main.yml is not a playbook at "),
        ("group_vars/all.yml", "group_vars/all.yml is not a playbook at "),
        ("missing.yml", "missing.yml is not a playbook at "),
        ("../site.yml", "A path inside the repository, without '..'."),
        ("/etc/passwd", "A path inside the repository, without '..'."),
    ],
)
def test_it_refuses_a_path_that_is_not_a_playbook_beside_the_field(ops_client, repo, path, message):
    source = _synced_source(repo)

    response = _add_version(ops_client, source, "main", path)

    assert response.status_code == 200
    assert escape(message) in _field_row(response, "path")
    assert not PlaybookVersion.objects.exists()


def test_it_refuses_a_playbook_that_was_not_there_at_that_commit(ops_client, repo):
    source = _synced_source(repo)
    first = _shas(repo)[1]

    response = _add_version(ops_client, source, first, "deploy/web.yml")

    assert escape(f"deploy/web.yml is not a playbook at {first[:10]}.") in _field_row(
        response, "path"
    )


def test_it_asks_to_sync_a_source_before_pinning_from_it(ops_client, repo):
    source = PlaybookSource.objects.create(name="playbooks", url=str(repo))

    response = _add_version(ops_client, source, "main", "site.yml")

    assert response.status_code == 200
    assert escape("playbooks has not been synced yet: sync it first.") in _field_row(
        response, "source"
    )
    assert not PlaybookVersion.objects.exists()


def test_it_refuses_to_pin_the_same_version_twice(ops_client, repo):
    source = _synced_source(repo)
    _add_version(ops_client, source, "main", "site.yml")

    response = _add_version(ops_client, source, _shas(repo)[0], "site.yml")

    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert PlaybookVersion.objects.count() == 1


# --- approving ------------------------------------------------------------------------
def test_it_approves_the_selected_versions(ops_client, repo, ops):
    source = PlaybookSource.objects.create(name="playbooks", url=str(repo))
    _sync(ops_client, source)
    site, web = source.versions.get(path="site.yml"), source.versions.get(path="deploy/web.yml")

    response = ops_client.post(
        reverse("admin:catalog_playbookversion_changelist"),
        {"action": "approve", "_selected_action": [site.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert "Approved 1 playbook version(s)." in response.content.decode()
    site.refresh_from_db()
    web.refresh_from_db()
    assert site.approved_by == ops and site.approved_at is not None and site.is_approved
    assert web.approved_by is None and not web.is_approved
    [event] = _audit("playbook_version.approve")
    assert (event.actor_name, event.via, event.object_id) == ("ops", Via.ADMIN, str(site.pk))
    assert event.details["content_hash"] == site.content_hash


def test_it_does_not_approve_a_version_twice(ops_client, dev):
    version = PlaybookVersionFactory(approved_by=dev)
    approved_at = version.approved_at

    ops_client.post(
        reverse("admin:catalog_playbookversion_changelist"),
        {"action": "approve", "_selected_action": [version.pk]},
    )

    version.refresh_from_db()
    assert (version.approved_by, version.approved_at) == (dev, approved_at)
    assert not _audit("playbook_version.approve")


def test_it_keeps_a_pinned_version_read_only(ops_client):
    version = PlaybookVersionFactory(approved_at=None)

    ops_client.post(
        reverse("admin:catalog_playbookversion_change", args=[version.pk]),
        {"commit": "f" * 40, "path": "other.yml", "content_hash": "1" * 64},
    )

    version.refresh_from_db()
    assert (version.path, version.content_hash) == ("site.yml", "0" * 64)
    assert version.commit != "f" * 40
