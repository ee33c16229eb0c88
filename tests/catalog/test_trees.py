"""The cache of approved versions' exported trees: runs copy from it, and what it holds
is checked against the content hash at each copy."""

import os
import stat

import pytest
from django.conf import settings

from apps.catalog import git, trees
from tests.conftest import git_repo

PLAY = "- name: Site\n  hosts: all\n  tasks: []\n"
FILES = {"site.yml": PLAY, "roles/web/tasks/main.yml": "- ansible.builtin.debug:\n", "run.sh": ""}


@pytest.fixture
def source(tmp_path, settings):
    settings.TREES_DIR = tmp_path / "trees"
    repo = tmp_path / "repo"
    git_repo(repo, FILES)
    (repo / "run.sh").chmod(0o755)
    os.symlink("site.yml", repo / "main.yml")
    git_repo(repo, {})
    mirror = tmp_path / "mirror.git"
    git.mirror_update(str(repo), mirror)
    commit = git.commit_resolve(mirror, "main")
    exported = tmp_path / "exported"
    exported.mkdir()
    git.tree_export(mirror, commit, exported)
    exports = []

    def export(dest):
        exports.append(dest)
        git.tree_export(mirror, commit, dest)

    return git.tree_hash(exported), export, exports


def _files(root):
    return {
        path.relative_to(root).as_posix(): (path.read_bytes(), os.access(path, os.X_OK))
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_a_run_copies_the_tree_exported_once(tmp_path, source):
    content_hash, export, exports = source

    first = trees.tree_copy(content_hash, export, tmp_path / "run1")
    second = trees.tree_copy(content_hash, export, tmp_path / "run2")

    assert (first, second, len(exports)) == (False, True, 1)
    for run in ("run1", "run2"):
        assert git.tree_hash(tmp_path / run) == content_hash
        assert (tmp_path / run / "main.yml").readlink().as_posix() == "site.yml"
        assert os.access(tmp_path / run / "run.sh", os.X_OK)
    # The run's copy is its own: writing it leaves the cache as it was.
    (tmp_path / "run2" / "site.yml").write_text("- hosts: evil\n")
    entry = settings.TREES_DIR / content_hash
    assert git.tree_hash(entry) == content_hash
    assert not stat.S_IMODE((entry / "site.yml").stat().st_mode) & 0o222


def test_a_changed_cache_entry_is_exported_again(tmp_path, source):
    content_hash, export, exports = source
    trees.tree_copy(content_hash, export, tmp_path / "run1")
    entry = settings.TREES_DIR / content_hash
    (entry / "site.yml").chmod(0o644)
    (entry / "site.yml").write_text("- hosts: all\n  tasks: [{shell: 'rm -rf /'}]\n")

    cached = trees.tree_copy(content_hash, export, tmp_path / "run2")

    assert cached is False and len(exports) == 2
    assert _files(tmp_path / "run2") == _files(tmp_path / "run1")
    assert (tmp_path / "run2" / "site.yml").read_text() == PLAY
    assert git.tree_hash(entry) == content_hash


def test_an_export_that_does_not_match_the_hash_is_refused_and_not_cached(tmp_path, source):
    _content_hash, export, _exports = source

    with pytest.raises(ValueError, match="The playbook content changed: expected SHA-256 1111"):
        trees.tree_copy("1" * 64, export, tmp_path / "run")

    assert list(settings.TREES_DIR.iterdir()) == []
    with pytest.raises(ValueError, match="Not a content hash"):
        trees.tree_copy("../x", export, tmp_path / "run")
