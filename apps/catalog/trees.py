"""A read-only cache of the exported trees of playbook versions, keyed by their content
hash (`TREES_DIR/<sha256>/`), so a run copies its playbook instead of exporting the
commit from the git mirror again.

An entry is written once, by the worker that first needs it, from a fresh export whose
hash was checked; it is never written by a run (each run works on its own copy, in its
private dir). Each copy is hashed as it is made, against the content hash the run was
approved with: an entry changed on disk gives another hash, is removed and built again
from the mirror, and a fresh export that does not match refuses the run as before.
"""

import logging
import os
import shutil
import stat
import uuid
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

from apps.catalog.git import tree_hash

log = logging.getLogger(__name__)


def _content_changed(expected: str, actual: str) -> ValueError:
    return ValueError(f"The playbook content changed: expected SHA-256 {expected}, found {actual}.")


def _read_only(root: Path) -> None:
    """Files and folders of `root` read-only (executables keep their x bits)."""
    for folder, dirs, files in os.walk(root):
        for name in files:
            path = Path(folder, name)
            if not path.is_symlink():
                mode = path.stat().st_mode
                path.chmod(0o555 if mode & stat.S_IXUSR else 0o444)
        for name in dirs:
            path = Path(folder, name)
            if not path.is_symlink():
                path.chmod(0o555)
    root.chmod(0o555)


def tree_remove(root: Path) -> None:
    """Remove `root`, read-only folders included."""
    if not root.exists():
        return
    for folder, dirs, _files in os.walk(root):
        Path(folder).chmod(0o700)
        for name in dirs:
            path = Path(folder, name)
            if not path.is_symlink():
                path.chmod(0o700)
    shutil.rmtree(root, ignore_errors=True)


def _copy(source: Path, dest: Path) -> None:
    """Copy the tree `source` into `dest` (a fresh folder of the run, 0700): files
    0600, or 0700 when executable; symlinks as symlinks."""
    dest.mkdir(mode=0o700, exist_ok=True)
    for folder, dirs, files in os.walk(source):
        rel = Path(folder).relative_to(source)
        target = dest / rel
        for name in dirs:
            path = Path(folder, name)
            if path.is_symlink():
                os.symlink(os.readlink(path), target / name)
            else:
                (target / name).mkdir(mode=0o700)
        for name in files:
            path = Path(folder, name)
            if path.is_symlink():
                os.symlink(os.readlink(path), target / name)
                continue
            shutil.copyfile(path, target / name)
            (target / name).chmod(0o700 if path.stat().st_mode & stat.S_IXUSR else 0o600)


def _build(content_hash: str, export: Callable[[Path], None]) -> Path:
    """The cache entry of `content_hash`, exported by `export` into a fresh folder and
    checked before it takes its place."""
    entry = settings.TREES_DIR / content_hash
    building = settings.TREES_DIR / f".build-{uuid.uuid4().hex}"
    building.mkdir(parents=True, mode=0o700)
    try:
        export(building)
        actual = tree_hash(building)
        if actual != content_hash:
            raise _content_changed(content_hash, actual)
        _read_only(building)
        try:
            building.rename(entry)
        except OSError:
            if not entry.is_dir():  # not another worker's entry: something else
                raise
    finally:
        tree_remove(building)
    return entry


def tree_copy(content_hash: str, export: Callable[[Path], None], dest: Path) -> bool:
    """Put the tree whose hash is `content_hash` in `dest` (a new folder), copied from the
    cache; the entry is made first with `export(folder)` when missing, and made again
    when what it holds no longer has that hash. Returns whether the cache had it.
    Raises ValueError when a fresh export does not have that hash either."""
    if len(content_hash) != 64 or not all(c in "0123456789abcdef" for c in content_hash):
        raise ValueError(f"Not a content hash: {content_hash!r}")
    entry = settings.TREES_DIR / content_hash
    cached = entry.is_dir()
    if not cached:
        entry = _build(content_hash, export)
    _copy(entry, dest)
    actual = tree_hash(dest)
    if actual == content_hash:
        return cached
    tree_remove(dest)
    if not cached:
        raise _content_changed(content_hash, actual)
    log.warning(
        "The cached tree %s changed on disk (its files hash to %s): it is exported again.",
        content_hash,
        actual,
    )
    tree_remove(entry)
    entry = _build(content_hash, export)
    _copy(entry, dest)
    actual = tree_hash(dest)
    if actual != content_hash:
        tree_remove(dest)
        raise _content_changed(content_hash, actual)
    return False
