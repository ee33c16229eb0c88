"""What the CI runner tells about the job: an idempotency key that a retry of the same job
reuses, and the build's provenance (commit, ref, repository, pipeline, job).

GitHub Actions: a re-run of a job keeps GITHUB_RUN_ID and GITHUB_JOB and only counts
GITHUB_RUN_ATTEMPT up, so the key is made of the run, the job and the step, never the
attempt. GitLab CI: a retried job gets a new CI_JOB_ID, so the key is made of the
pipeline (CI_PIPELINE_ID) and the job's name (CI_JOB_NAME), which a retry keeps.
Elsewhere the key is random, and printed so the launch can be retried by hand.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

KEY_VARIABLE = "PUSHBUTTON_IDEMPOTENCY_KEY"


@dataclass(frozen=True)
class Key:
    value: str
    origin: str  # where it comes from, as said to the user


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).hexdigest()[:40]


def idempotency_key(env: Mapping[str, str], launch: list, *, given: str = "") -> Key:
    """The key of this launch: `given` (--idempotency-key or PUSHBUTTON_IDEMPOTENCY_KEY); or
    made of the CI job's identity and of `launch` (the command and what it launches, so
    two different launches in one step get two keys); or random."""
    if given:
        return Key(given, "given")
    if env.get("GITHUB_ACTIONS") == "true" and env.get("GITHUB_RUN_ID"):
        job = [env.get(n, "") for n in ("GITHUB_REPOSITORY", "GITHUB_RUN_ID", "GITHUB_JOB")]
        step = env.get("GITHUB_ACTION", "")
        return Key(
            f"github-{_digest(*job, step, launch)}",
            f"GitHub Actions run {job[1]}, job {job[2]}, step {step} (any attempt)",
        )
    if env.get("GITLAB_CI") == "true" and env.get("CI_PIPELINE_ID"):
        pipeline, name = env["CI_PIPELINE_ID"], env.get("CI_JOB_NAME", "")
        project = env.get("CI_PROJECT_ID", "")
        return Key(
            f"gitlab-{_digest(project, pipeline, name, launch)}",
            f"GitLab pipeline {pipeline}, job {name} (any retry)",
        )
    return Key(f"random-{uuid.uuid4().hex}", "random")


def _commit_time(sha: str) -> str | None:
    """When `sha` was committed, if this directory is a checkout that has it."""
    try:
        done = subprocess.run(
            ["git", "show", "-s", "--format=%cI", sha],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def ci_source(env: Mapping[str, str]) -> dict:
    """The build's provenance as the CI runner tells it (empty elsewhere)."""
    if env.get("GITHUB_ACTIONS") == "true" and env.get("GITHUB_SHA"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
        repository = f"{server}/{env.get('GITHUB_REPOSITORY', '')}"
        source = {
            "commit": env["GITHUB_SHA"],
            "ref": env.get("GITHUB_REF_NAME") or env.get("GITHUB_REF", ""),
            "repository": repository,
            "pipeline_url": f"{repository}/actions/runs/{env.get('GITHUB_RUN_ID', '')}",
            "committed_at": _commit_time(env["GITHUB_SHA"]),
        }
    elif env.get("GITLAB_CI") == "true" and env.get("CI_COMMIT_SHA"):
        source = {
            "commit": env["CI_COMMIT_SHA"],
            "committed_at": env.get("CI_COMMIT_TIMESTAMP"),
            "ref": env.get("CI_COMMIT_TAG") or env.get("CI_COMMIT_REF_NAME", ""),
            "repository": env.get("CI_PROJECT_URL", ""),
            "pipeline_url": env.get("CI_PIPELINE_URL", ""),
            "job_url": env.get("CI_JOB_URL", ""),
        }
    else:
        return {}
    return {name: value for name, value in source.items() if value}
