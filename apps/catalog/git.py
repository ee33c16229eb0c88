"""The few git operations the portal needs, on a bare mirror of each source."""

import fcntl
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

import yaml

# Folders that hold roles, variables and collections, never playbooks.
NOT_PLAYBOOK_DIRS = {
    "roles",
    "group_vars",
    "host_vars",
    "collections",
    "files",
    "templates",
    "vars",
}


class GitError(Exception):
    pass


@dataclass(frozen=True)
class Commit:
    sha: str
    committed_at: datetime
    author: str
    message: str


def _git(
    *args: str,
    git_dir: Path | None = None,
    stdin: bytes | None = None,
    timeout: float = 300,
    env: dict | None = None,
) -> bytes:
    cmd = ["git"]
    if git_dir is not None:
        cmd.append(f"--git-dir={git_dir}")
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/false", **(env or {})}
    try:
        result = subprocess.run(
            [*cmd, *args], input=stdin, capture_output=True, env=env, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise GitError(f"git {args[0]} took longer than {timeout:g} s.") from exc
    if result.returncode != 0:
        raise GitError(result.stderr.decode(errors="replace").strip() or f"git {args[0]} failed")
    return result.stdout


def mirror_dir(url: str, mirrors: Path) -> Path:
    """Where the bare mirror of `url` lives under `mirrors`: keyed by the URL, so a mirror
    always belongs to the repository it was cloned from."""
    return Path(mirrors) / f"{hashlib.sha256(url.encode()).hexdigest()[:20]}.git"


@contextmanager
def _mirror_lock(mirror: Path) -> Iterator[None]:
    """One writer of `mirror` at a time on this host (a lock file beside it): the runs of
    a worker, and the admin, may need the same mirror at the same moment."""
    mirror.parent.mkdir(parents=True, exist_ok=True)
    with open(mirror.parent / f"{mirror.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def mirror_update(url: str, mirror: Path) -> None:
    """Clone the repository as a bare mirror, or fetch what is new."""
    with _mirror_lock(mirror):
        _mirror_update(url, mirror)


def _mirror_update(url: str, mirror: Path) -> None:
    if url.startswith("-"):
        raise GitError("A repository URL cannot start with '-'.")
    if (mirror / "HEAD").exists():
        _git("remote", "update", "--prune", git_dir=mirror)
        return
    # Cloned beside it, then put in its place whole: a clone cut short (a worker killed)
    # leaves no half mirror that every later clone would refuse to write over.
    partial = mirror.parent / f".{mirror.name}.clone-{uuid.uuid4().hex}"
    try:
        _git("clone", "--quiet", "--mirror", "--", url, str(partial))
        if mirror.exists():  # a half mirror left by an older portal
            shutil.rmtree(mirror)
        partial.rename(mirror)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


# Transports a form's choice source may name: never ext:: (a command line) nor fd::.
CHOICE_PROTOCOLS = "file:git:http:https:ssh"


def refs_list(url: str, *, kind: str, timeout: float) -> list[str]:
    """The short names of the tags (kind "tags") or branches ("branches") of the
    repository at `url`, newest version first (git's version order: v1.10 before v1.9),
    asked of the repository itself (`git ls-remote`), nothing fetched."""
    if url.startswith("-"):
        raise GitError("A repository URL cannot start with '-'.")
    prefix = {"tags": "refs/tags/", "branches": "refs/heads/"}[kind]
    out = _git(
        "ls-remote", "--refs", "--sort=-v:refname", f"--{'tags' if kind == 'tags' else 'heads'}",
        "--", url,
        timeout=timeout,
        env={"GIT_ALLOW_PROTOCOL": CHOICE_PROTOCOLS},
    )  # fmt: skip
    names = []
    for line in out.decode(errors="replace").splitlines():
        _, _, ref = line.partition("\t")
        if ref.startswith(prefix):
            names.append(ref.removeprefix(prefix))
    return names


def commit_resolve(mirror: Path, ref: str) -> str:
    """The full sha of the commit `ref` names (a sha, a short sha, a branch or a tag)."""
    if ref.startswith("-"):
        raise GitError(f"Not a commit: {ref}")
    try:
        out = _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", git_dir=mirror)
    except GitError as exc:
        # --quiet leaves git's stderr empty when the commit is simply not there.
        raise GitError(f"No commit {ref!r} in the repository. {exc}".strip()) from exc
    return out.decode().strip()


def _resolved(mirror: Path, ref: str) -> str | None:
    """`commit_resolve`, or None when there is no mirror yet or it lacks `ref`."""
    if not (mirror / "HEAD").exists():
        return None
    try:
        return commit_resolve(mirror, ref)
    except GitError:
        return None


def commit_fetch(url: str, mirror: Path, ref: str) -> str:
    """`commit_resolve`, fetching the repository first when the mirror lacks `ref`."""
    if sha := _resolved(mirror, ref):
        return sha
    with _mirror_lock(mirror):
        # Another run may have fetched it while this one waited.
        if sha := _resolved(mirror, ref):
            return sha
        _mirror_update(url, mirror)
    return commit_resolve(mirror, ref)


def commits_list(mirror: Path, branch: str, limit: int = 50) -> list[Commit]:
    if branch.startswith("-"):
        # It would be read as an option of `git log` (--output=FILE writes a file).
        raise GitError(f"A branch name cannot start with '-': {branch}")
    out = _git("log", f"-n{limit}", "--format=%H%x00%cI%x00%an%x00%s", branch, "--", git_dir=mirror)
    commits = []
    for line in out.decode(errors="replace").splitlines():
        sha, when, author, message = line.split("\0", 3)
        commits.append(Commit(sha, datetime.fromisoformat(when), author, message))
    return commits


def file_read(mirror: Path, commit: str, path: str) -> bytes:
    return _git("show", f"{commit}:{path}", git_dir=mirror)


class _PlaybookLoader(yaml.SafeLoader):
    """Safe YAML that reads Ansible's own tags (!vault, !unsafe) as plain values."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node):
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)


_PlaybookLoader.add_multi_constructor("!", _tagged)


def playbooks_list(mirror: Path, commit: str) -> list[str]:
    """YAML files at `commit` that hold a list of plays."""
    raw = _git("ls-tree", "-r", "--name-only", "-z", commit, git_dir=mirror)
    found = []
    for raw_name in raw.split(b"\0"):
        try:
            name = raw_name.decode()
        except UnicodeDecodeError:
            continue  # not a name the portal could store or show
        parts = PurePosixPath(name).parts
        if not name.endswith((".yml", ".yaml")) or NOT_PLAYBOOK_DIRS & set(parts[:-1]):
            continue
        try:
            content = yaml.load(file_read(mirror, commit, name), Loader=_PlaybookLoader)  # noqa: S506
        except yaml.YAMLError:
            continue
        if (
            isinstance(content, list)
            and content
            and all(
                isinstance(play, dict) and ("hosts" in play or "import_playbook" in play)
                for play in content
            )
        ):
            found.append(name)
    return found


def tree_export(
    mirror: Path, commit: str, dest: Path, *, url: str = "", mirrors: Path | None = None
) -> None:
    """Write the files of `commit` into `dest`; links pointing outside it are refused.

    Submodules (which `git archive` leaves empty) are exported at the commit the tree
    pins, from the URL .gitmodules gives (a relative one against `url`), mirrored under
    `mirrors`. One that cannot be fetched raises GitError naming it: never an empty
    directory in its place."""
    _archive_extract(mirror, commit, dest)
    _submodules_export(mirror, commit, dest, url=url, mirrors=mirrors, depth=0)


def _archive_extract(mirror: Path, commit: str, dest: Path) -> None:
    archive = _git("archive", "--format=tar", commit, git_dir=mirror)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        try:
            tar.extractall(dest, filter="data")
        except tarfile.FilterError as exc:
            raise GitError(f"Refused to export {commit[:10]}: {exc}") from exc


MAX_SUBMODULE_DEPTH = 5


def submodules_list(mirror: Path, commit: str) -> list[tuple[str, str]]:
    """(path, pinned commit) of each submodule in the tree of `commit`."""
    raw = _git("ls-tree", "-r", "-z", commit, git_dir=mirror)
    found = []
    for entry in raw.split(b"\0"):
        if entry.startswith(b"160000 commit "):
            meta, _, path = entry.partition(b"\t")
            found.append((path.decode(errors="replace"), meta.split()[2].decode()))
    return found


def _gitmodules_urls(mirror: Path, commit: str) -> dict[str, str]:
    """{path: url} as the .gitmodules of `commit` gives them."""
    try:
        raw = _git("config", "--blob", f"{commit}:.gitmodules", "-z", "--list", git_dir=mirror)
    except GitError:
        return {}
    names: dict[str, dict[str, str]] = {}
    for item in raw.decode(errors="replace").split("\0"):
        key, _, value = item.partition("\n")
        section, _, rest = key.partition(".")
        name, _, field = rest.rpartition(".")
        if section == "submodule" and field in ("path", "url"):
            names.setdefault(name, {})[field] = value
    return {v["path"]: v.get("url", "") for v in names.values() if "path" in v}


def url_join(base: str, relative: str) -> str:
    """A submodule's URL as git reads it: "./x" and "../x" are relative to `base`, the
    URL of the repository that holds it."""
    if not relative.startswith(("./", "../")):
        return relative
    url = base.rstrip("/")
    for part in relative.split("/"):
        if part == "..":
            url = url.rsplit("/", 1)[0] if "/" in url else url.rsplit(":", 1)[0]
        elif part not in ("", "."):
            url = f"{url}/{part}"
    return url


def _submodules_export(
    mirror: Path, commit: str, dest: Path, *, url: str, mirrors: Path | None, depth: int
) -> None:
    submodules = submodules_list(mirror, commit)
    if not submodules:
        return
    urls = _gitmodules_urls(mirror, commit)
    root = dest.resolve()
    for path, sha in submodules:
        where = f"Submodule {path!r} (commit {sha[:10]})"
        sub_url = urls.get(path, "")
        if not sub_url:
            raise GitError(f"{where} has no URL in .gitmodules: it cannot be fetched.")
        if depth >= MAX_SUBMODULE_DEPTH:
            raise GitError(f"{where}: submodules nest deeper than {MAX_SUBMODULE_DEPTH}.")
        if mirrors is None or (sub_url.startswith(("./", "../")) and not url):
            raise GitError(f"{where} from {sub_url} cannot be fetched here.")
        sub_url = url_join(url, sub_url)
        target = (dest / path).resolve()
        if not target.is_relative_to(root) or target == root:
            raise GitError(f"{where}: its path leads outside the tree.")
        sub_mirror = mirror_dir(sub_url, mirrors)
        try:
            sub_commit = commit_fetch(sub_url, sub_mirror, sha)
        except GitError as exc:
            raise GitError(f"{where} cannot be fetched from {sub_url}: {exc}") from exc
        target.mkdir(parents=True, exist_ok=True)
        _archive_extract(sub_mirror, sub_commit, target)
        _submodules_export(
            sub_mirror, sub_commit, target, url=sub_url, mirrors=mirrors, depth=depth + 1
        )


def tree_hash(root: Path) -> str:
    """SHA-256 over every file's path, executable bit and content under `root`, in path order."""
    digest = hashlib.sha256()
    root = Path(root)
    for path in sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink()):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            content = b"symlink:" + os.readlink(path).encode()
        else:
            mode = b"x:" if os.access(path, os.X_OK) else b"f:"
            content = mode + path.read_bytes()
        digest.update(rel.encode() + b"\0" + hashlib.sha256(content).digest())
    return digest.hexdigest()


# --- what changed between two commits (the approval page, the sync's message) ----------
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's id of the empty tree


@dataclass(frozen=True)
class FileChange:
    status: str  # "added", "removed" or "changed"
    path: str


_STATUS = {"A": "added", "D": "removed", "M": "changed", "T": "changed"}


def _sha_arg(sha: str) -> str:
    if not sha or sha.startswith("-"):
        raise GitError(f"Not a commit: {sha!r}")
    return sha


def commits_between(mirror: Path, base: str | None, head: str, limit: int = 100) -> list[Commit]:
    """The commits after `base` up to `head`, newest first (all of `head`'s if no base)."""
    span = f"{_sha_arg(base)}..{_sha_arg(head)}" if base else _sha_arg(head)
    out = _git("log", f"-n{limit}", "--format=%H%x00%cI%x00%an%x00%s", span, "--", git_dir=mirror)
    commits = []
    for line in out.decode(errors="replace").splitlines():
        sha, when, author, message = line.split("\0", 3)
        commits.append(Commit(sha, datetime.fromisoformat(when), author, message))
    return commits


def commits_count(mirror: Path, base: str | None, head: str) -> int:
    span = f"{_sha_arg(base)}..{_sha_arg(head)}" if base else _sha_arg(head)
    return int(_git("rev-list", "--count", span, "--", git_dir=mirror).decode().strip() or 0)


def files_changed(mirror: Path, base: str | None, head: str) -> list[FileChange]:
    """Files added, deleted or changed from `base` (nothing, if None) to `head`."""
    out = _git(
        "diff", "--no-renames", "--name-status", "-z", _sha_arg(base or EMPTY_TREE),
        _sha_arg(head), "--", git_dir=mirror,
    )  # fmt: skip
    parts = out.decode(errors="replace").split("\0")
    return [
        FileChange(_STATUS.get(status[:1], "changed"), path)
        for status, path in zip(parts[0::2], parts[1::2], strict=False)
        if status
    ]


def tree_diff(mirror: Path, base: str | None, head: str, max_bytes: int = 400_000) -> str:
    """The unified diff of the whole tree from `base` (nothing, if None) to `head`."""
    out = _git(
        "-c", "core.quotepath=off", "diff", "--no-color", "--no-ext-diff", "--no-renames",
        "--no-textconv", _sha_arg(base or EMPTY_TREE), _sha_arg(head), "--", git_dir=mirror,
    )  # fmt: skip
    text = out[:max_bytes].decode(errors="replace")
    if len(out) > max_bytes:
        text += f"\n… (diff cut at {max_bytes} bytes)\n"
    return text


def is_ancestor(mirror: Path, older: str, newer: str) -> bool:
    try:
        _git("merge-base", "--is-ancestor", _sha_arg(older), _sha_arg(newer), git_dir=mirror)
    except GitError:
        return False
    return True


def tree_texts(
    mirror: Path, commit: str, max_files: int = 200, max_bytes: int = 100_000
) -> list[tuple[str, str | None]]:
    """Each file of `commit` with its text (None for a binary or too large a file)."""
    out = _git("ls-tree", "-r", "-l", "-z", _sha_arg(commit), git_dir=mirror)
    files = []
    for entry in out.split(b"\0")[:max_files]:
        if not entry:
            continue
        meta, _, raw_name = entry.partition(b"\t")
        _mode, kind, _obj, size = meta.split()
        name = raw_name.decode(errors="replace")
        if kind != b"blob" or size == b"-" or int(size) > max_bytes:
            files.append((name, None))
            continue
        content = file_read(mirror, commit, name)
        files.append((name, None if b"\0" in content else content.decode(errors="replace")))
    return files
