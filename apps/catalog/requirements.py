"""Roles and collections a playbook tree asks for in its requirements files, pinned and
installed with ansible-galaxy into a cache keyed by what was pinned.

At sync each source is pinned: a git source (a role `src: git+URL` or `scm: git`, a
collection `type: git`) to the commit its version (branch, tag or commit) names then,
from a mirror kept beside the sources; an archive (a local path, file:// or http(s)
URL) by its SHA-256, copied into the cache. ansible-galaxy then installs from those
pins only, with a home, configuration and temp dirs of its own: nothing is read or
written in the worker's home. What it installed is hashed; the version's content hash
covers that hash, and a run checks it again on the copy it runs with.

The pins (the "lock") are kept on the playbook version: a worker that lacks the cache
installs it again from them, and the hash check tells whether it got the same content.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import yaml

from apps.catalog import git

# Where ansible-galaxy looks for each kind, and the files that may list them.
REQUIREMENTS_FILES = {
    "roles/requirements.yml": ("roles",),
    "roles/requirements.yaml": ("roles",),
    "collections/requirements.yml": ("collections",),
    "collections/requirements.yaml": ("collections",),
    "requirements.yml": ("roles", "collections"),
    "requirements.yaml": ("roles", "collections"),
}
GALAXY_TIMEOUT = 600
DOWNLOAD_TIMEOUT = 60
LOCK_FORMAT = 1


class RequirementsError(Exception):
    pass


# --- reading -------------------------------------------------------------------------
def requirements_read(tree: Path) -> dict:
    """{"files": {path: sha256}, "roles": [...], "collections": [...]}: the entries of
    the requirements files in `tree`, as written (each with the file it came from)."""
    found: dict = {"files": {}, "roles": [], "collections": []}
    for name, kinds in REQUIREMENTS_FILES.items():
        path = tree / name
        if not path.is_file() or path.is_symlink():
            continue
        raw = path.read_bytes()
        found["files"][name] = hashlib.sha256(raw).hexdigest()
        try:
            content = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise RequirementsError(f"{name} is not valid YAML: {exc}") from exc
        if content is None:
            continue
        if isinstance(content, list):
            content = {"roles": content}  # the old format: a list of roles
        if not isinstance(content, dict):
            raise RequirementsError(f"{name}: expected a mapping with roles: / collections:.")
        for kind in kinds:
            entries = content.get(kind) or []
            if not isinstance(entries, list):
                raise RequirementsError(f"{name}: {kind} must be a list.")
            found[kind] += [(name, entry) for entry in entries]
    return found


# --- pinning -------------------------------------------------------------------------
def _role_name(src: str) -> str:
    """The name ansible-galaxy gives a role installed from a URL or archive."""
    name = src.rstrip("/").split("/")[-1].split(",")[0]
    for suffix in (".git", ".tar.gz", ".tgz", ".tar"):
        name = name.removesuffix(suffix)
    return name


def _is_local(src: str) -> bool:
    return src.startswith(("/", "./", "../", "file://")) or ("://" not in src and "/" in src)


def _local_path(src: str, tree: Path) -> Path:
    if src.startswith("file://"):
        return Path(urllib.parse.urlparse(src).path)
    path = Path(src)
    # A relative path is read from the repository itself.
    return path if path.is_absolute() else tree / path


def _archive_fetch(src: str, tree: Path, archives: Path) -> str:
    """Copy (or download) the archive `src` into `archives`; return its SHA-256."""
    archives.mkdir(parents=True, exist_ok=True)
    draft = archives / f".{uuid.uuid4().hex}"
    try:
        if src.startswith(("http://", "https://")):
            with (
                urllib.request.urlopen(src, timeout=DOWNLOAD_TIMEOUT) as response,  # noqa: S310
                open(draft, "wb") as out,
            ):
                shutil.copyfileobj(response, out)
        else:
            path = _local_path(src, tree)
            if not path.is_file():
                raise RequirementsError(f"No archive at {src}.")
            shutil.copyfile(path, draft)
        digest = hashlib.sha256(draft.read_bytes()).hexdigest()
        os.replace(draft, archives / digest)
        return digest
    except OSError as exc:
        raise RequirementsError(f"Cannot read the archive {src}: {exc}") from exc
    finally:
        draft.unlink(missing_ok=True)


def _git_pin(url: str, ref: str, mirrors: Path, *, fetch: bool = True) -> str:
    """The commit `ref` names in the repository at `url`. At sync (`fetch`) the mirror
    is updated first, so a branch or tag is read as it is now; at install, only when
    the mirror lacks the pinned commit."""
    mirror = git.mirror_dir(url, mirrors)
    try:
        if fetch:
            git.mirror_update(url, mirror)
            return git.commit_resolve(mirror, ref or "HEAD")
        return git.commit_fetch(url, mirror, ref)
    except git.GitError as exc:
        raise RequirementsError(f"{url} at {ref or 'HEAD'}: {exc}") from exc


def _role_pin(entry, tree: Path, mirrors: Path, archives: Path) -> dict:
    if isinstance(entry, str):
        # The old one-line form: "[scm+]src[,version[,name]]".
        src, version, name = ([*entry.split(","), "", ""])[:3]
        entry = {"src": src, "version": version, "name": name}
    if not isinstance(entry, dict) or "include" in entry:
        raise RequirementsError(f"unsupported entry {entry!r} (give src:, version:, name:).")
    src = str(entry.get("src") or entry.get("role") or entry.get("name") or "")
    version = str(entry.get("version") or "")
    scm = str(entry.get("scm") or "")
    if "+" in src.split("://")[0] and not src.startswith("/"):
        scm, src = src.split("+", 1)
    name = str(entry.get("name") or "") if entry.get("src") else ""
    if scm:
        if scm != "git":
            raise RequirementsError(f"role {src}: only git sources can be pinned, not {scm}.")
        return {
            "name": name or _role_name(src),
            "git": src,
            "ref": version,
            "commit": _git_pin(src, version, mirrors),
        }
    if _is_local(src) or src.startswith(("http://", "https://")):
        return {
            "name": name or _role_name(src),
            "archive": src,
            "sha256": _archive_fetch(src, tree, archives),
        }
    # A role of a Galaxy server: pinned by its version and the hash of what it installed.
    return {"name": name or src, "galaxy": src, "version": version}


def _collection_pin(entry, tree: Path, mirrors: Path, archives: Path) -> dict:
    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, dict) or not entry.get("name"):
        raise RequirementsError(f"unsupported entry {entry!r} (give name:, and type:).")
    name = str(entry["name"])
    version = str(entry.get("version") or "")
    kind = str(entry.get("type") or "")
    source = str(entry.get("source") or "")
    if name.startswith("git+") or kind == "git":
        url = name.removeprefix("git+")
        if "," in url.split("#")[-1]:
            url, version = url.rsplit(",", 1)
        url, _, subdir = url.partition("#")
        return {
            "git": url,
            "subdir": subdir,
            "ref": version if version not in ("", "*") else "",
            "commit": _git_pin(url, "" if version == "*" else version, mirrors),
        }
    if kind in ("file", "url") or (
        not kind
        and (name.endswith((".tar.gz", ".tgz")) or name.startswith(("http://", "https://")))
    ):
        return {"archive": name, "sha256": _archive_fetch(name, tree, archives)}
    if kind in ("dir", "subdirs"):
        return {kind: name}
    if kind not in ("", "galaxy"):
        raise RequirementsError(f"collection {name}: unknown type {kind!r}.")
    return {"galaxy": name, "version": version or "*", "source": source}


def requirements_pin(tree: Path, *, mirrors: Path, cache: Path) -> dict:
    """The lock of `tree`'s requirements: each source pinned now. {} when it has none.

    Raises RequirementsError naming the file and entry that cannot be resolved."""
    found = requirements_read(tree)
    if not found["files"]:
        return {}
    lock: dict = {"format": LOCK_FORMAT, "files": found["files"], "roles": [], "collections": []}
    archives = cache / "archives"
    for kind, pin in (("roles", _role_pin), ("collections", _collection_pin)):
        for name, entry in found[kind]:
            try:
                lock[kind].append(pin(entry, tree, mirrors, archives))
            except RequirementsError as exc:
                raise RequirementsError(f"{name}: {exc}") from exc
    return lock


def requirements_key(lock: dict) -> str:
    """The cache key: the requirements files' content and every pin."""
    pinned = {k: lock.get(k) for k in ("format", "files", "roles", "collections")}
    return hashlib.sha256(json.dumps(pinned, sort_keys=True).encode()).hexdigest()


# --- installing ------------------------------------------------------------------------
def _galaxy_roles(
    lock: dict, tree: Path, mirrors: Path, archives: Path, names: dict[str, str]
) -> list[dict]:
    roles = []
    for role in lock["roles"]:
        if "git" in role:
            mirror = git.mirror_dir(role["git"], mirrors)
            _git_pin(role["git"], role["commit"], mirrors, fetch=False)
            names[str(mirror)] = role["git"]
            roles.append(
                {"src": str(mirror), "scm": "git", "version": role["commit"], "name": role["name"]}
            )
        elif "archive" in role:
            path = _archive_at(role, tree, archives)
            names[str(path)] = role["archive"]
            roles.append({"src": str(path), "name": role["name"]})
        else:
            roles.append({"src": role["galaxy"], "name": role["name"], "version": role["version"]})
            if not role["version"]:
                del roles[-1]["version"]
    return roles


def _galaxy_collections(
    lock: dict, tree: Path, mirrors: Path, archives: Path, names: dict[str, str]
) -> list[dict]:
    collections = []
    for coll in lock["collections"]:
        if "git" in coll:
            mirror = git.mirror_dir(coll["git"], mirrors)
            _git_pin(coll["git"], coll["commit"], mirrors, fetch=False)
            names[str(mirror)] = coll["git"]
            url = f"git+file://{mirror}" + (f"#{coll['subdir']}" if coll["subdir"] else "")
            collections.append({"name": url, "type": "git", "version": coll["commit"]})
        elif "archive" in coll:
            path = _archive_at(coll, tree, archives)
            names[str(path)] = coll["archive"]
            collections.append({"name": str(path), "type": "file"})
        elif "dir" in coll or "subdirs" in coll:
            kind = "dir" if "dir" in coll else "subdirs"
            collections.append({"name": str(_local_path(coll[kind], tree)), "type": kind})
        else:
            item = {"name": coll["galaxy"], "version": coll["version"]}
            if coll.get("source"):
                item["source"] = coll["source"]
            collections.append(item)
    return collections


def _archive_at(pinned: dict, tree: Path, archives: Path) -> Path:
    path = archives / pinned["sha256"]
    if not path.is_file() and _archive_fetch(pinned["archive"], tree, archives) != pinned["sha256"]:
        raise RequirementsError(
            f"The archive {pinned['archive']} changed since sync: its SHA-256 is no longer "
            f"{pinned['sha256']}."
        )
    # ansible-galaxy tells an archive by its name.
    named = archives / "named" / pinned["sha256"] / (Path(pinned["archive"]).name or "archive")
    if not named.suffix:
        named = named.with_suffix(".tar.gz")
    if not named.is_file():
        named.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, named)
    return named


def _galaxy_env(work: Path, out: Path) -> dict[str, str]:
    """ansible-galaxy's environment: its home, configuration, caches and temp are in
    `work`; only what it installs goes to `out`."""
    home = work / "home"
    (work / "tmp").mkdir(parents=True)
    home.mkdir()
    (work / "ansible.cfg").write_text("")
    env = {
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
        "LANG": "C.UTF-8",
        "HOME": str(home),
        "TMPDIR": str(work / "tmp"),
        "ANSIBLE_CONFIG": str(work / "ansible.cfg"),
        "ANSIBLE_HOME": str(home / ".ansible"),
        "ANSIBLE_LOCAL_TEMP": str(work / "tmp"),
        "ANSIBLE_GALAXY_CACHE_DIR": str(home / "galaxy_cache"),
        "ANSIBLE_GALAXY_TOKEN_PATH": str(home / "galaxy_token"),
        "ANSIBLE_GALAXY_DISPLAY_PROGRESS": "False",
        "ANSIBLE_ROLES_PATH": str(out / "roles"),
        "ANSIBLE_COLLECTIONS_PATH": str(out / "collections"),
        "ANSIBLE_NOCOLOR": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/false",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    for name in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def _galaxy(args: list[str], env: dict, work: Path, *, names: dict[str, str]) -> None:
    """Run ansible-galaxy; its message, when it fails, names the sources as the
    requirements file does (`names`: our local copies' paths -> the source's own)."""
    galaxy = Path(sys.executable).parent / "ansible-galaxy"
    command = [str(galaxy) if galaxy.exists() else "ansible-galaxy", *args]
    try:
        result = subprocess.run(
            command,
            cwd=work,
            env=env,
            capture_output=True,
            timeout=GALAXY_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RequirementsError(f"ansible-galaxy {args[0]} install timed out.") from exc
    if result.returncode != 0:
        output = (result.stderr or result.stdout).decode(errors="replace").strip()
        for local, original in sorted(names.items(), key=lambda item: -len(item[0])):
            output = output.replace(local, original)
        raise RequirementsError(f"ansible-galaxy {args[0]} install failed: {output}")


def _normalize(out: Path) -> None:
    """Drop what ansible-galaxy writes about the install itself (its date, where from):
    the same pins then install the same bytes, on any worker."""
    for info in out.glob("roles/*/meta/.galaxy_install_info"):
        info.unlink()
    for info in out.glob("collections/ansible_collections/*.info"):
        shutil.rmtree(info)


def requirements_install(lock: dict, *, tree: Path, mirrors: Path, cache: Path) -> Path:
    """The directory holding what `lock` installs (roles/, collections/), installed now
    unless the cache has it already. Raises RequirementsError with ansible-galaxy's
    message when it cannot install."""
    dest = cache / requirements_key(lock)
    if dest.is_dir():
        return dest
    cache.mkdir(parents=True, exist_ok=True)
    staging = cache / f".install-{uuid.uuid4().hex}"
    work, out = staging / "work", staging / "out"
    try:
        (out / "roles").mkdir(parents=True)
        (out / "collections").mkdir()
        env = _galaxy_env(work, out)
        archives = cache / "archives"
        names = {str(tree): "."}
        if roles := _galaxy_roles(lock, tree, mirrors, archives, names):
            (work / "roles.yml").write_text(yaml.safe_dump({"roles": roles}))
            args = ["role", "install", "-r", "roles.yml", "-p", str(out / "roles")]
            _galaxy(args, env, work, names=names)
        if collections := _galaxy_collections(lock, tree, mirrors, archives, names):
            (work / "collections.yml").write_text(yaml.safe_dump({"collections": collections}))
            args = [
                "collection",
                "install",
                "-r",
                "collections.yml",
                "-p",
                str(out / "collections"),
            ]
            _galaxy(args, env, work, names=names)
        _normalize(out)
        try:
            os.rename(out, dest)
        except OSError:
            if not dest.is_dir():  # else another sync installed the same meanwhile
                raise
        return dest
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def requirements_resolve(tree: Path, *, mirrors: Path, cache: Path) -> dict:
    """Pin and install the requirements of `tree`: their lock, with the hash of what they
    installed ("hash"); {} when the tree has no requirements file."""
    lock = requirements_pin(tree, mirrors=mirrors, cache=cache)
    if lock:
        installed = requirements_install(lock, tree=tree, mirrors=mirrors, cache=cache)
        lock["hash"] = git.tree_hash(installed)
    return lock


def content_hash(tree_hash: str, installed_hash: str | None) -> str:
    """A version's hash: its tree's, and, when it has requirements, what they installed."""
    if installed_hash is None:
        return tree_hash
    return hashlib.sha256(f"{tree_hash}\nrequirements:{installed_hash}".encode()).hexdigest()
