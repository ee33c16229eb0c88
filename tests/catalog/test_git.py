"""The git operations behind playbook sources, on real repositories."""

import os
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from apps.catalog import git
from tests.conftest import git_repo

PLAY = "- name: Site\n  hosts: all\n  tasks: []\n"
TASKS = "- name: A task\n  ansible.builtin.debug:\n    msg: hi\n"


def _mirror(tmp_path, files, *, setup=None):
    """A repository holding `files` (after `setup(repo)`), and a bare mirror of it."""
    repo = tmp_path / "repo"
    repo.mkdir()
    if setup:
        setup(repo)
    git_repo(repo, files)
    mirror = tmp_path / "mirror.git"
    git.mirror_update(str(repo), mirror)
    return repo, mirror


def _head(mirror):
    return git.commit_resolve(mirror, "main")


# --- tree_hash ----------------------------------------------------------------
def test_it_hashes_a_tree_the_same_way_every_time(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name / "roles").mkdir(parents=True)
        (tmp_path / name / "site.yml").write_text(PLAY)
        (tmp_path / name / "roles" / "main.yml").write_text(TASKS)

    first = git.tree_hash(tmp_path / "a")

    assert len(first) == 64 and int(first, 16) >= 0
    assert git.tree_hash(tmp_path / "a") == first
    assert git.tree_hash(tmp_path / "b") == first


def test_it_changes_the_hash_when_a_file_changes(tmp_path):
    (tmp_path / "site.yml").write_text(PLAY)
    before = git.tree_hash(tmp_path)

    (tmp_path / "site.yml").write_text(PLAY.replace("all", "web"))

    assert git.tree_hash(tmp_path) != before


def test_it_changes_the_hash_when_a_file_is_added_or_renamed(tmp_path):
    (tmp_path / "site.yml").write_text(PLAY)
    before = git.tree_hash(tmp_path)

    (tmp_path / "extra.yml").write_text(TASKS)
    added = git.tree_hash(tmp_path)
    (tmp_path / "extra.yml").rename(tmp_path / "other.yml")

    assert len({before, added, git.tree_hash(tmp_path)}) == 3


def test_it_changes_the_hash_when_a_link_points_elsewhere(tmp_path):
    (tmp_path / "a.yml").write_text(PLAY)
    (tmp_path / "b.yml").write_text(PLAY)
    (tmp_path / "site.yml").symlink_to("a.yml")
    before = git.tree_hash(tmp_path)

    (tmp_path / "site.yml").unlink()
    (tmp_path / "site.yml").symlink_to("b.yml")

    assert git.tree_hash(tmp_path) != before


# --- tree_export ----------------------------------------------------------------
def test_it_exports_the_files_of_a_commit(tmp_path):
    _, mirror = _mirror(tmp_path, {"site.yml": PLAY, "roles/web/tasks/main.yml": TASKS})
    dest = tmp_path / "export"
    dest.mkdir()

    git.tree_export(mirror, _head(mirror), dest)

    assert (dest / "site.yml").read_text() == PLAY
    assert (dest / "roles" / "web" / "tasks" / "main.yml").read_text() == TASKS


def test_it_hashes_an_export_the_same_as_the_checkout(tmp_path):
    repo, mirror = _mirror(tmp_path, {"site.yml": PLAY, "roles/web/tasks/main.yml": TASKS})
    dest = tmp_path / "export"
    dest.mkdir()
    git.tree_export(mirror, _head(mirror), dest)
    subprocess.run(["rm", "-rf", str(repo / ".git")], check=True)

    assert git.tree_hash(dest) == git.tree_hash(repo)


def test_it_exports_a_link_that_stays_inside_the_checkout(tmp_path):
    _, mirror = _mirror(
        tmp_path, {"real.yml": PLAY}, setup=lambda repo: os.symlink("real.yml", repo / "site.yml")
    )
    dest = tmp_path / "export"
    dest.mkdir()

    git.tree_export(mirror, _head(mirror), dest)

    assert (dest / "site.yml").is_symlink()
    assert (dest / "site.yml").read_text() == PLAY


@pytest.mark.parametrize("target", ["../../../../etc/passwd", "/etc/passwd"])
def test_it_refuses_to_export_a_link_pointing_outside_the_checkout(tmp_path, target):
    _, mirror = _mirror(
        tmp_path, {"site.yml": PLAY}, setup=lambda repo: os.symlink(target, repo / "passwd")
    )
    head = _head(mirror)
    dest = tmp_path / "export"
    dest.mkdir()

    with pytest.raises(git.GitError, match=f"Refused to export {head[:10]}"):
        git.tree_export(mirror, head, dest)

    assert not (dest / "passwd").exists()
    assert not (dest / "passwd").is_symlink()


def test_it_refuses_to_export_a_link_to_a_folder_beside_the_checkout(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    _, mirror = _mirror(
        tmp_path, {"site.yml": PLAY}, setup=lambda repo: os.symlink("../outside", repo / "escape")
    )
    dest = tmp_path / "export"
    dest.mkdir()

    with pytest.raises(git.GitError):
        git.tree_export(mirror, _head(mirror), dest)

    assert list(outside.iterdir()) == []


# --- playbooks_list --------------------------------------------------------------
def test_it_lists_playbooks_but_not_roles_vars_or_task_files(tmp_path):
    files = {
        "site.yml": PLAY,
        "deploy/web.yaml": "- hosts: web\n  roles: [web]\n",
        "all.yml": "- import_playbook: site.yml\n",
        "roles/web/tasks/main.yml": TASKS,
        "roles/web/playbook.yml": PLAY,
        "group_vars/all.yml": "port: 80\n",
        "host_vars/web1.yml": "port: 81\n",
        "vars/main.yml": PLAY,
        "tasks.yml": TASKS,
        "settings.yml": "hosts: all\n",
        "empty.yml": "",
        "broken.yml": "- hosts: [all\n",
        "README.md": "# playbooks\n",
        "inventory.ini": "[web]\nlocalhost\n",
    }
    _, mirror = _mirror(tmp_path, files)

    assert sorted(git.playbooks_list(mirror, _head(mirror))) == [
        "all.yml",
        "deploy/web.yaml",
        "site.yml",
    ]


def test_it_lists_a_playbook_that_uses_ansible_tags(tmp_path):
    play = (
        "- hosts: all\n"
        "  vars:\n"
        "    greeting: !unsafe '{{ not a template }}'\n"
        "    password: !vault |\n"
        "      $ANSIBLE_VAULT;1.1;AES256\n"
        "      6162636465\n"
        "  tasks: []\n"
    )
    _, mirror = _mirror(tmp_path, {"site.yml": play})

    assert git.playbooks_list(mirror, _head(mirror)) == ["site.yml"]


def test_it_does_not_run_python_tags_while_looking_for_playbooks(tmp_path):
    marker = tmp_path / "pwned"
    play = f"- hosts: !!python/object/apply:os.system ['touch {marker}']\n"
    _, mirror = _mirror(tmp_path, {"site.yml": play})

    assert git.playbooks_list(mirror, _head(mirror)) == []
    assert not marker.exists()


# --- mirror_update, commits, refs ---------------------------------------------------
@pytest.mark.parametrize("url", ["-uhttps://example.com/x.git", "--upload-pack=touch /tmp/x"])
def test_it_refuses_a_url_starting_with_a_dash(tmp_path, url):
    with pytest.raises(git.GitError, match="cannot start with '-'"):
        git.mirror_update(url, tmp_path / "mirror.git")

    assert not (tmp_path / "mirror.git").exists()


def test_it_fetches_new_commits_into_an_existing_mirror(tmp_path):
    repo, mirror = _mirror(tmp_path, {"site.yml": PLAY})
    first = _head(mirror)

    git_repo(repo, {"site.yml": PLAY.replace("all", "web")})
    git.mirror_update(str(repo), mirror)

    commits = git.commits_list(mirror, "main")
    assert [c.sha for c in commits][1:] == [first]
    assert commits[0].sha != first and len(commits[0].sha) == 40
    assert commits[0].message == "test playbooks" and commits[0].author == "t"


def test_it_reports_a_repository_that_cannot_be_cloned(tmp_path):
    with pytest.raises(git.GitError, match=r"does not exist|not a git repository|not found"):
        git.mirror_update(str(tmp_path / "missing"), tmp_path / "mirror.git")


def test_it_refuses_a_branch_starting_with_a_dash(tmp_path):
    _, mirror = _mirror(tmp_path, {"site.yml": PLAY})
    out = tmp_path / "written"

    with pytest.raises(git.GitError, match="cannot start with '-'"):
        git.commits_list(mirror, f"--output={out}")

    assert not out.exists()


def test_it_resolves_a_short_sha_or_branch_to_the_full_sha(tmp_path):
    _, mirror = _mirror(tmp_path, {"site.yml": PLAY})
    head = git.commits_list(mirror, "main")[0].sha

    assert git.commit_resolve(mirror, "main") == head
    assert git.commit_resolve(mirror, head[:8]) == head


@pytest.mark.parametrize("ref", ["0" * 40, "no-such-branch", "--all"])
def test_it_says_when_a_commit_is_not_there(tmp_path, ref):
    _, mirror = _mirror(tmp_path, {"site.yml": PLAY})

    with pytest.raises(git.GitError, match="commit"):
        git.commit_resolve(mirror, ref)


def test_tree_hash_changes_when_a_file_becomes_executable(tmp_path):
    (tmp_path / "deploy.sh").write_text("#!/bin/sh\n")
    before = git.tree_hash(tmp_path)
    (tmp_path / "deploy.sh").chmod(0o755)
    assert git.tree_hash(tmp_path) != before


# --- mirrors shared by a worker's runs ------------------------------------------------
def test_runs_that_need_the_same_missing_mirror_at_once_all_get_their_commit(tmp_path):
    """A new worker host starts two runs of one source at the same moment: both find no
    mirror and clone it. One clone, into the mirror's place once whole; the other waits
    for it and reads the commit there."""
    repo = git_repo(tmp_path / "repo", {"site.yml": PLAY})
    sha = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    mirror = tmp_path / "sources" / "mirror.git"
    barrier = threading.Barrier(6)

    def fetch(_):
        barrier.wait()
        return git.commit_fetch(str(repo), mirror, sha)

    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(fetch, range(6))) == [sha] * 6
    assert _head(mirror) == sha
    assert sorted(p.name for p in mirror.parent.iterdir()) == ["mirror.git", "mirror.git.lock"]
