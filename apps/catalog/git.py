"""The few git operations the portal needs, on a bare mirror of each source."""

import hashlib
import io
import os
import subprocess
import tarfile
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


def mirror_update(url: str, mirror: Path) -> None:
    """Clone the repository as a bare mirror, or fetch what is new."""
    if url.startswith("-"):
        raise GitError("A repository URL cannot start with '-'.")
    if (mirror / "HEAD").exists():
        _git("remote", "update", "--prune", git_dir=mirror)
    else:
        mirror.parent.mkdir(parents=True, exist_ok=True)
        _git("clone", "--quiet", "--mirror", "--", url, str(mirror))


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


def tree_export(mirror: Path, commit: str, dest: Path) -> None:
    """Write the files of `commit` into `dest`; links pointing outside it are refused."""
    archive = _git("archive", "--format=tar", commit, git_dir=mirror)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        try:
            tar.extractall(dest, filter="data")
        except tarfile.FilterError as exc:
            raise GitError(f"Refused to export {commit[:10]}: {exc}") from exc


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
