"""Inventories kept in a playbook repository: an environment names a source and a path
in it (a file, a directory, or an inventory plugin's configuration that needs no
network). A run uses that path in the tree it exported for its playbook, so the
inventory is pinned by the playbook version's commit and content hash; the admin shows
the hosts it resolves to at the source's newest approved version (`ansible-inventory
--list`, with a timeout)."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.cache import cache

from apps.catalog import git
from apps.catalog.models import PlaybookSource, PlaybookVersion

# What a tree pinned by its hash resolves to does not change: kept this long.
LISTING_CACHE_SECONDS = 600


class InventoryPathError(ValueError):
    """An inventory path that is not a file or directory inside the exported tree."""


def inventory_path_errors(path: str) -> list[str]:
    """What is wrong with an inventory path before any tree is looked at."""
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or path.startswith("-"):
        return ["A path inside the repository (a file or a directory), without '..'."]
    return []


def inventory_path_check(project: Path, path: str) -> Path:
    """The inventory at `path` in the exported tree `project`: refused when the path is
    absolute, climbs out, leads outside the tree through a symlink, or is missing."""
    if errors := inventory_path_errors(path):
        raise InventoryPathError(f"Refused inventory path {path!r}: {errors[0]}")
    root = project.resolve()
    target = (project / path).resolve()
    if not target.is_relative_to(root):
        raise InventoryPathError(f"Refused inventory path {path!r}: it leads outside the tree.")
    if not (target.is_file() or target.is_dir()):
        raise InventoryPathError(f"No file or directory {path!r} in the tree.")
    return target


@dataclass
class InventoryListing:
    """The hosts an inventory resolves to (host -> its groups), at which version, or why
    it could not be listed."""

    version: PlaybookVersion | None = None
    hosts: dict[str, list[str]] = field(default_factory=dict)
    error: str = ""


def inventory_version(source: PlaybookSource) -> PlaybookVersion | None:
    """The version of `source` an inventory is shown and checked at: its newest approved."""
    return (
        PlaybookVersion.objects.filter(source=source, approved_at__isnull=False)
        .order_by("-approved_at", "-pk")
        .first()
    )


def inventory_list(*, source: PlaybookSource, path: str) -> InventoryListing:
    """The hosts the inventory at `path` of `source` resolves to, at its newest approved
    version: the tree is exported and checked against the version's hash, then
    `ansible-inventory --list` reads it (INVENTORY_LIST_TIMEOUT seconds at most)."""
    version = inventory_version(source)
    if version is None:
        return InventoryListing(
            error=f"{source} has no approved playbook version yet: approve one first."
        )
    listing = InventoryListing(version=version)
    key = (
        "pushbutton:inventory:"
        + hashlib.sha256(f"{version.content_hash}\0{version.commit}\0{path}".encode()).hexdigest()
    )
    if (hosts := cache.get(key)) is not None:
        listing.hosts = hosts
        return listing
    with tempfile.TemporaryDirectory(prefix="pushbutton-inventory-") as tmp:
        project = Path(tmp) / "project"
        project.mkdir()
        try:
            git.tree_export(source.mirror_path, version.commit, project)
        except git.GitError as exc:
            listing.error = f"Cannot export {version.commit[:10]} of {source}: {exc}"
            return listing
        if git.tree_hash(project) != version.content_hash:
            listing.error = f"The tree of {version.commit[:10]} does not match its approved hash."
            return listing
        try:
            target = inventory_path_check(project, path)
        except InventoryPathError as exc:
            listing.error = f"{exc} (at {version.commit[:10]})"
            return listing
        try:
            listing.hosts = _ansible_inventory(target, project, Path(tmp))
        except InventoryPathError as exc:
            listing.error = str(exc)
            return listing
    cache.set(key, listing.hosts, LISTING_CACHE_SECONDS)
    return listing


def _ansible_inventory(target: Path, project: Path, tmp: Path) -> dict[str, list[str]]:
    bin_dir = os.path.dirname(sys.executable)
    command = shutil.which("ansible-inventory", path=os.pathsep.join([bin_dir, os.defpath]))
    if command is None:
        raise InventoryPathError("ansible-inventory is not installed beside the portal.")
    env = {
        **os.environ,
        # The portal's own secrets are not the inventory's business.
        **dict.fromkeys(settings.RUN_HIDDEN_ENV, ""),
        "TMPDIR": str(tmp),
        "ANSIBLE_LOCAL_TEMP": str(tmp / "local"),
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
        "ANSIBLE_NOCOLOR": "1",
    }
    try:
        result = subprocess.run(
            [command, "--list", "-i", str(target)],
            cwd=project,
            env=env,
            capture_output=True,
            timeout=settings.INVENTORY_LIST_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise InventoryPathError(
            f"ansible-inventory took longer than {settings.INVENTORY_LIST_TIMEOUT} s."
        ) from exc
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip()
        raise InventoryPathError(f"ansible-inventory failed: {message[-2000:]}")
    try:
        data = json.loads(result.stdout)
    except ValueError as exc:
        raise InventoryPathError("ansible-inventory did not answer JSON.") from exc
    return _hosts_and_groups(data)


def _hosts_and_groups(data: dict) -> dict[str, list[str]]:
    """host -> the groups it is in (directly or through children), from `--list` output."""
    children = {name: (body or {}).get("children", []) for name, body in data.items()}
    direct = {name: (body or {}).get("hosts", []) for name, body in data.items()}
    hosts: dict[str, set[str]] = {h: set() for h in data.get("_meta", {}).get("hostvars", {})}

    def members(group: str, seen: set[str]) -> set[str]:
        if group in seen:
            return set()
        seen.add(group)
        found = set(direct.get(group, []))
        for child in children.get(group, []):
            found |= members(child, seen)
        return found

    for group in data:
        if group in ("_meta", "all", "ungrouped"):
            continue
        for host in members(group, set()):
            hosts.setdefault(host, set()).add(group)
    for host in direct.get("ungrouped", []):
        hosts.setdefault(host, set())
    return {host: sorted(groups) for host, groups in sorted(hosts.items())}
