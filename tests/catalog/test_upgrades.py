"""Upgrading a playbook: the sync says what is new, Approve shows the diff and the commits,
and moves the chosen actions in the same step; an action shows its version history."""

import subprocess
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils.html import escape

from apps.audit.constants import Via
from apps.audit.models import AuditEvent
from apps.catalog.constants import SyncStatus
from apps.catalog.models import Action, PlaybookSource, PlaybookVersion
from apps.catalog.services import playbook_version_approve
from apps.catalog.upgrades import source_sync_report
from tests.conftest import git_repo, wait_for
from tests.factories import ActionFactory, EnvironmentFactory, ServiceFactory

PLAY = "- name: Deploy\n  hosts: web\n  tasks:\n    - ansible.builtin.debug:\n        msg: v1\n"
ROLE = {
    "meta/main.yml": "galaxy_info:\n  author: t\n  description: hello\n  license: MIT\n"
    "  min_ansible_version: '2.15'\n  platforms: []\ndependencies: []\n",
    "tasks/main.yml": "- ansible.builtin.debug:\n    msg: hello\n",
}


def _requirements(role: Path, tag: str) -> str:
    """roles/requirements.yml taking the role at `tag` from its git repository on disk."""
    return f"roles:\n  - src: git+file://{role}\n    version: {tag}\n    name: hello\n"


def _role_repo(path: Path) -> Path:
    """A role's git repository with the tags v1 and v2 (the sync resolves and installs them)."""
    git_repo(path, ROLE)
    subprocess.run(["git", "-C", str(path), "tag", "v1"], check=True)
    git_repo(path, {"tasks/main.yml": ROLE["tasks/main.yml"].replace("hello", "hello v2")})
    subprocess.run(["git", "-C", str(path), "tag", "v2"], check=True)
    return path


def _commit(repo, files: dict[str, str | None], *, author: str, message: str) -> str:
    """A commit of `files` (None removes one) by `author`; returns its sha."""
    for name, content in files.items():
        target = repo / name
        if content is None:
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(
        ["git", "-C", str(repo), "-c", f"user.name={author}", "-c", "user.email=a@example.com",
         "commit", "-q", "-m", message],
        check=True,
    )  # fmt: skip
    out = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


@pytest.fixture
def repo(tmp_path):
    role = _role_repo(tmp_path / "role")
    return git_repo(
        tmp_path / "ops-playbooks",
        {"deploy.yml": PLAY, "roles/requirements.yml": _requirements(role, "v1"),
         "old.txt": "gone soon\n"},
    )  # fmt: skip


@pytest.fixture
def upgraded(db, ops, repo, tmp_path):
    """A source whose deploy.yml v1 is approved and run by two actions; then three commits
    by two people change deploy.yml and the requirements, add a file and remove one."""
    source = PlaybookSource.objects.create(name="ops", url=str(repo))
    source_sync_report(source=source, acting_user=ops, via=Via.CLI)
    v1 = playbook_version_approve(
        version=source.versions.get(path="deploy.yml"), acting_user=ops, via=Via.CLI
    )
    env = EnvironmentFactory(slug="test")
    shop = ActionFactory(
        service=ServiceFactory(slug="shop"), playbook_version=v1, environments=[env]
    )
    cart = ActionFactory(
        service=ServiceFactory(slug="cart"), playbook_version=v1, environments=[env]
    )
    _commit(repo, {"deploy.yml": PLAY.replace("v1", "v2")}, author="Ada", message="Say v2")
    _commit(
        repo,
        {"roles/requirements.yml": _requirements(tmp_path / "role", "v2"), "notes.md": "hello\n"},
        author="Grace",
        message="Pin the role at v2",
    )
    head = _commit(repo, {"old.txt": None}, author="Ada", message="Remove old.txt")
    return source, v1, shop, cart, head


def _audit(verb):
    return list(AuditEvent.objects.filter(verb=verb).order_by("id"))


# --- the sync's message -----------------------------------------------------------------
def test_the_sync_says_what_changed_in_how_many_commits_and_what_waits(upgraded, ops):
    source, v1, _shop, _cart, head = upgraded

    message = source_sync_report(source=source, acting_user=ops, via=Via.CLI)

    assert message == (
        f"ops: deploy.yml, notes.md, old.txt, roles/requirements.yml changed in 3 commits since "
        f"{v1.commit[:7]}; version {head[:7]} (deploy.yml) waits for approval."
    )
    source.refresh_from_db()
    assert (source.sync_status, source.sync_message, source.sync_head) == (
        SyncStatus.SYNCED,
        message,
        head,
    )
    assert source.sync_finished_at is not None


def test_a_second_sync_says_nothing_new_once_approved(upgraded, ops):
    source, *_, head = upgraded
    source_sync_report(source=source, acting_user=ops, via=Via.CLI)
    playbook_version_approve(version=source.versions.get(commit=head), acting_user=ops, via=Via.CLI)

    message = source_sync_report(source=source, acting_user=ops, via=Via.CLI)

    assert message == f"ops: nothing new (head {head[:7]})."


def test_the_admin_list_action_shows_the_message(upgraded, ops_client):
    source, v1, *_ = upgraded

    response = ops_client.post(
        reverse("admin:catalog_playbooksource_changelist"),
        {"action": "sync", "_selected_action": [source.pk]},
        follow=True,
    )

    assert escape(f"changed in 3 commits since {v1.commit[:7]}") in response.content.decode()
    assert "waits for approval" in response.content.decode()


def test_sync_now_syncs_and_the_source_page_shows_the_outcome(upgraded, ops_client):
    source, *_, head = upgraded

    response = ops_client.post(
        reverse("admin:catalog_playbooksource_sync", args=[source.pk]), follow=True
    )

    html = response.content.decode()
    assert response.redirect_chain[-1][0] == reverse(
        "admin:catalog_playbooksource_change", args=[source.pk]
    )
    assert 'id="sync-now"' in html
    assert "Synced" in html and f"{head[:7]} (deploy.yml) waits for approval" in html
    waiting = source.versions.get(commit=head)
    review = reverse("admin:catalog_playbookversion_review", args=[waiting.pk])
    assert f'<a href="{review}">Review and approve deploy.yml at {head[:10]}</a>' in html


def test_a_failed_sync_is_kept_with_its_reason(db, ops):
    source = PlaybookSource.objects.create(name="broken", url="/nonexistent/repo.git")

    with pytest.raises(Exception, match="Sync of broken failed"):
        source_sync_report(source=source, acting_user=ops, via=Via.CLI)

    source.refresh_from_db()
    assert source.sync_status == SyncStatus.FAILED
    assert source.sync_message.startswith("Sync of broken failed:")


# --- the review before Approve ------------------------------------------------------------
@pytest.fixture
def synced(upgraded, ops):
    source, v1, shop, cart, head = upgraded
    source_sync_report(source=source, acting_user=ops, via=Via.CLI)
    return source.versions.get(commit=head, path="deploy.yml"), v1, shop, cart


def test_the_review_shows_the_tree_the_diff_and_the_commits_with_their_authors(synced, ops_client):
    v2, v1, _shop, _cart = synced

    response = ops_client.get(reverse("admin:catalog_playbookversion_review", args=[v2.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Waits for approval." in html
    assert f"<code>{v1.commit[:10]}</code>" in html
    # The diff of the tree, requirements included, line by line.
    assert '<span class="del">-        msg: v1</span>' in html
    assert '<span class="add">+        msg: v2</span>' in html
    assert '<span class="add">+    version: v2</span>' in html
    assert '<span class="file">diff --git a/roles/requirements.yml b/roles/requirements.yml' in html
    # Files added, removed, changed.
    for status, name in [
        ("changed", "deploy.yml"),
        ("added", "notes.md"),
        ("removed", "old.txt"),
        ("changed", "roles/requirements.yml"),
    ]:
        assert f"<tr><td>{status}</td><td><code>{name}</code></td></tr>" in html
    # The commits in between, newest first, with their authors; not the approved one.
    commits = html[html.index('id="commits"') : html.index('id="diff"')]
    assert commits.index("Remove old.txt") < commits.index("Pin the role at v2")
    assert commits.index("Pin the role at v2") < commits.index("Say v2")
    assert "<td>Grace</td><td>Pin the role at v2</td>" in commits
    assert "<td>Ada</td><td>Say v2</td>" in commits
    assert "test playbooks" not in commits
    # The playbook's text, and who approved the version before.
    assert escape("msg: v2") in html[html.index('id="tree"') :]
    approvals = html[html.index('id="approvals"') : html.index('id="tree"')]
    assert "<td>ops</td>" in approvals and v1.commit[:10] in approvals


def test_the_review_ticks_the_actions_on_an_older_version(synced, ops_client):
    v2, _v1, shop, cart = synced

    html = ops_client.get(
        reverse("admin:catalog_playbookversion_review", args=[v2.pk])
    ).content.decode()

    for action in (shop, cart):
        assert f'name="move" value="{action.pk}" checked' in html


def test_the_review_compares_with_another_version_when_asked(synced, ops_client):
    v2, v1, *_ = synced

    own = ops_client.get(
        reverse("admin:catalog_playbookversion_review", args=[v1.pk]), {"against": v2.pk}
    )
    missing = ops_client.get(
        reverse("admin:catalog_playbookversion_review", args=[v1.pk]), {"against": "999999"}
    )

    assert '<span class="add">+        msg: v1</span>' in own.content.decode()
    assert missing.status_code == 404


def test_approve_moves_the_chosen_actions_in_one_step_and_audits_each(synced, ops_client):
    v2, v1, shop, cart = synced

    response = ops_client.post(
        reverse("admin:catalog_playbookversion_review", args=[v2.pk]),
        {"move": [shop.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert escape(f"Approved deploy.yml at {v2.commit[:10]}; moved: {shop}.") in (
        response.content.decode()
    )
    v2.refresh_from_db()
    assert v2.is_approved and v2.approved_by.username == "ops"
    shop.refresh_from_db()
    cart.refresh_from_db()
    assert shop.playbook_version == v2 and cart.playbook_version == v1
    [approval] = [e for e in _audit("playbook_version.approve") if e.object_id == str(v2.pk)]
    assert approval.object_id == str(v2.pk) and approval.via == Via.ADMIN
    [moved] = [e for e in _audit("action.update") if e.object_id == str(shop.pk)]
    assert moved.actor_name == "ops" and moved.service == "shop"
    assert moved.details["playbook_version"]["commit"] == v2.commit
    assert moved.details["changes"]["playbook_version.id"] == [v1.pk, v2.pk]
    assert not [e for e in _audit("action.update") if e.object_id == str(cart.pk)]


def test_an_approved_version_can_still_take_more_actions(synced, ops_client, ops):
    v2, _v1, _shop, cart = synced
    playbook_version_approve(version=v2, acting_user=ops, via=Via.CLI)

    ops_client.post(
        reverse("admin:catalog_playbookversion_review", args=[v2.pk]), {"move": [cart.pk]}
    )

    cart.refresh_from_db()
    assert cart.playbook_version == v2
    assert len(_audit("playbook_version.approve")) == 2  # v1 and v2, not twice v2


def test_an_action_of_another_playbook_is_not_moved(synced, ops_client):
    v2, *_ = synced
    other = PlaybookVersion.objects.create(
        source=v2.source, commit=v2.commit, path="other.yml", content_hash="0" * 64
    )
    stranger = ActionFactory(playbook_version=other)

    response = ops_client.post(
        reverse("admin:catalog_playbookversion_review", args=[v2.pk]),
        {"move": [stranger.pk]},
        follow=True,
    )

    assert "runs other.yml of ops, not deploy.yml" in response.content.decode()
    stranger.refresh_from_db()
    v2.refresh_from_db()
    assert stranger.playbook_version == other and not v2.is_approved


def test_only_ops_may_approve_on_the_review_page(synced, dev):
    from tests.clients import page_client

    v2, *_ = synced

    response = page_client(dev).post(
        reverse("admin:catalog_playbookversion_review", args=[v2.pk]), {"move": []}
    )

    assert response.status_code == 302 and "/login/" in response["Location"]
    v2.refresh_from_db()
    assert not v2.is_approved


# --- an action's version history ----------------------------------------------------------
def test_an_actions_page_shows_its_version_history(synced, ops_client):
    v2, _v1, shop, _cart = synced
    ops_client.post(
        reverse("admin:catalog_playbookversion_review", args=[v2.pk]), {"move": [shop.pk]}
    )

    html = ops_client.get(reverse("admin:catalog_action_change", args=[shop.pk])).content.decode()

    history = html[html.index('id="version-history"') :]
    assert history.index(v2.commit[:10]) < history.index("</table>")
    assert "<td>ops</td>" in history


def test_the_history_lists_each_version_once_newest_first(db, ops_client, repo, ops):
    source = PlaybookSource.objects.create(name="ops", url=str(repo))
    source_sync_report(source=source, acting_user=ops, via=Via.CLI)
    v1 = playbook_version_approve(
        version=source.versions.get(path="deploy.yml"), acting_user=ops, via=Via.CLI
    )
    env = EnvironmentFactory(slug="test")
    service = ServiceFactory(slug="shop")
    ops_client.post(
        reverse("admin:catalog_action_add"),
        {
            "service": service.pk, "slug": "deploy", "label": "Deploy", "kind": "deploy",
            "playbook_version": v1.pk, "environments": [env.pk], "timeout": "600",
            "form": "[]", "version_field": "", "position": "0", "description": "",
        },
    )  # fmt: skip
    action = Action.objects.get(slug="deploy")
    ops_client.post(
        reverse("admin:catalog_action_change", args=[action.pk]),
        {
            "service": service.pk, "slug": "deploy", "label": "Deploy now", "kind": "deploy",
            "playbook_version": v1.pk, "environments": [env.pk], "timeout": "600",
            "form": "[]", "version_field": "", "position": "0", "description": "",
        },
    )  # fmt: skip
    _commit(repo, {"deploy.yml": PLAY.replace("v1", "v2")}, author="Ada", message="Say v2")
    source_sync_report(source=source, acting_user=ops, via=Via.CLI)
    v2 = source.versions.get(path="deploy.yml", approved_at__isnull=True)
    ops_client.post(
        reverse("admin:catalog_playbookversion_review", args=[v2.pk]), {"move": [action.pk]}
    )

    html = ops_client.get(reverse("admin:catalog_action_change", args=[action.pk])).content.decode()

    table = html[
        html.index('id="version-history"') : html.index(
            "</table>", html.index('id="version-history"')
        )
    ]
    rows = table.split("<tr>")[2:]  # after the header
    assert len(rows) == 2  # the label's change is not a change of version
    assert v2.commit[:10] in rows[0] and v1.commit[:10] in rows[1]


# --- the versions list ---------------------------------------------------------------------
def test_the_versions_list_shows_the_approval_before_the_hash(synced, ops_client):
    v2, _v1, *_ = synced

    html = ops_client.get(reverse("admin:catalog_playbookversion_changelist")).content.decode()

    table = html[html.index('id="result_list"') :]
    header = table[: table.index("</thead>")]
    columns = ["column-path", "column-status", "column-approved_by", "column-short_commit",
               "column-short_hash"]  # fmt: skip
    assert all(c in header for c in columns)
    assert [header.index(c) for c in columns] == sorted(header.index(c) for c in columns)
    assert '<td class="field-status">waits for approval</td>' in table
    assert '<td class="field-status">approved</td>' in table
    assert f"{v2.content_hash[:12]}…" in html and v2.content_hash not in html.replace(
        f'title="{v2.content_hash}"', ""
    )
    assert reverse("admin:catalog_playbookversion_review", args=[v2.pk]) in html


# --- sync on save ----------------------------------------------------------------------------
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_saving_a_source_syncs_it_on_a_worker(celery_worker, ops_client, repo):
    response = ops_client.post(
        reverse("admin:catalog_playbooksource_add"),
        {
            "name": "ops",
            "url": str(repo),
            "branch": "main",
            "commits-TOTAL_FORMS": "0",
            "commits-INITIAL_FORMS": "0",
        },
        follow=True,
    )

    assert "syncing in the background" in response.content.decode()
    source = PlaybookSource.objects.get(name="ops")

    def synced():
        source.refresh_from_db()
        return source.sync_status == SyncStatus.SYNCED

    wait_for(synced, timeout=60, message=f"not synced: {source.sync_status}")
    assert source.sync_message.startswith("ops: new playbook deploy.yml; version ")
    assert source.versions.filter(path="deploy.yml").exists()
    [event] = _audit("source.sync")
    assert (event.actor_name, event.via) == ("ops", Via.ADMIN)
    page = ops_client.get(reverse("admin:catalog_playbooksource_change", args=[source.pk]))
    assert "new playbook deploy.yml" in page.content.decode()
