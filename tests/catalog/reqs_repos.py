"""Git repositories on disk for the requirements and submodule tests: a role in a git
repository (tagged v1.0), a collection built into a tarball, a role vendored as a
submodule, and a playbook repository that takes all three."""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from tests.conftest import git_repo

GALAXY_INFO = (
    "galaxy_info:\n  author: t\n  description: t\n  license: MIT\n"
    "  min_ansible_version: '2.15'\n  platforms: []\ndependencies: []\n"
)
MODULE = """#!/usr/bin/python
from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec={"name": {"type": "str", "required": True}})
    module.exit_json(changed=False, msg="pb.tools.greet greets " + module.params["name"])


if __name__ == "__main__":
    main()
"""
PLAYBOOK = """- name: Deploy with roles and a collection from requirements
  hosts: all
  gather_facts: false
  roles:
    - hello
    - vendored
  tasks:
    - name: Call the collection's module
      pb.tools.greet:
        name: "{{ pushbutton_service }}"
      register: greeting

    - name: Show what the module said
      ansible.builtin.debug:
        msg: "{{ greeting.msg }}"
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def role_repo(path: Path, message: str) -> Path:
    return git_repo(
        path,
        {
            "meta/main.yml": GALAXY_INFO,
            "tasks/main.yml": f"- name: Say hello\n  ansible.builtin.debug:\n    msg: {message}\n",
        },
    )


def collection_tarball(root: Path) -> Path:
    """pb.tools 1.0.0, built by `ansible-galaxy collection build`."""
    src = root / "pb-tools"
    (src / "plugins" / "modules").mkdir(parents=True)
    (src / "galaxy.yml").write_text(
        "namespace: pb\nname: tools\nversion: 1.0.0\nreadme: README.md\nauthors: [t]\n"
    )
    (src / "README.md").write_text("pb.tools\n")
    (src / "plugins" / "modules" / "greet.py").write_text(MODULE)
    home = root / "galaxy-home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "ANSIBLE_HOME": str(home / ".ansible")}
    galaxy = str(Path(sys.executable).parent / "ansible-galaxy")
    subprocess.run(
        [galaxy, "collection", "build", str(src), "--output-path", str(root)],
        check=True,
        capture_output=True,
        env=env,
    )
    shutil.rmtree(home)
    return root / "pb-tools-1.0.0.tar.gz"


def add_submodule(repo: Path, path: str, url: str, commit: str) -> None:
    """Record `commit` of `url` as a submodule at `path` (as `git submodule add` would)."""
    with (repo / ".gitmodules").open("a") as gitmodules:
        gitmodules.write(f'[submodule "{path}"]\n\tpath = {path}\n\turl = {url}\n')
    git(repo, "add", ".gitmodules")
    git(repo, "update-index", "--add", "--cacheinfo", f"160000,{commit},{path}")
    git(repo, "commit", "-q", "-m", f"submodule {path}")


def build(root: Path) -> SimpleNamespace:
    role = role_repo(root / "role-hello", "hello from the git role v1.0")
    git(role, "tag", "v1.0")
    tarball = collection_tarball(root)
    vendored = role_repo(root / "role-vendored", "hello from the vendored submodule")
    playbooks = git_repo(
        root / "playbooks",
        {
            "deploy.yml": PLAYBOOK,
            "roles/requirements.yml": (
                f"- src: git+file://{role}\n  version: v1.0\n  name: hello\n"
            ),
            "collections/requirements.yml": (
                f"collections:\n  - name: {tarball}\n    type: file\n"
            ),
        },
    )
    # A relative URL, resolved against the source's URL as git does.
    add_submodule(
        playbooks, "roles/vendored", "../role-vendored", git(vendored, "rev-parse", "HEAD")
    )
    return SimpleNamespace(
        role=role,
        role_commit=git(role, "rev-parse", "v1.0^{commit}"),
        tarball=tarball,
        vendored=vendored,
        playbooks=playbooks,
    )
