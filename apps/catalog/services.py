import tempfile
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_changes, audit_record, audit_snapshot
from apps.catalog import git, requirements
from apps.catalog.models import Action, PlaybookSource, PlaybookVersion, SourceCommit


def source_sync(*, source: PlaybookSource, acting_user, via: str) -> list[SourceCommit]:
    """Fetch the source; record its recent commits and offer its playbooks at the branch head.

    New playbook versions are created unapproved: Ops approves each one. A
    failure is kept on the source (`sync_error`) and raised as a ValidationError.
    """
    # The git work happens before the transaction, so no write lock is held
    # while a repository is fetched, exported and hashed.
    try:
        git.mirror_update(source.url, source.mirror_path)
        commits = git.commits_list(source.mirror_path, source.branch)
        head = commits[0].sha if commits else None
        head_playbooks = git.playbooks_list(source.mirror_path, head) if head else []
        pinned = set(
            PlaybookVersion.objects.filter(source=source, commit=head).values_list(
                "path", flat=True
            )
        )
        new_paths = [path for path in head_playbooks if path not in pinned]
        # One hash per commit: it covers the whole tree, whichever playbook runs.
        content_hash, lock = _content_at(source, head) if new_paths else ("", {})
    except (git.GitError, requirements.RequirementsError) as exc:
        source.sync_error = str(exc)
        source.save(update_fields=["sync_error"])
        raise ValidationError(f"Sync of {source} failed: {exc}") from exc
    with transaction.atomic():
        rows = _commits_store(source, commits, head_playbooks=head_playbooks)
        created = []
        for path in new_paths:
            # get_or_create: a sync running at the same time may have pinned it meanwhile.
            version, is_new = PlaybookVersion.objects.get_or_create(
                source=source,
                commit=head,
                path=path,
                defaults={"content_hash": content_hash, "requirements": lock},
            )
            if is_new:
                created.append(version)
        source.synced_at = timezone.now()
        source.sync_error = ""
        source.save(update_fields=["synced_at", "sync_error"])
        audit_record(
            actor=acting_user,
            via=via,
            verb="source.sync",
            obj=source,
            details={
                "head": head,
                "playbooks": head_playbooks,
                "new_versions": [v.pk for v in created],
            },
        )
    return rows


def _commits_store(source: PlaybookSource, commits, *, head_playbooks) -> list[SourceCommit]:
    """Record the fetched commits (newest first); the head one lists its playbooks."""
    rows = []
    for index, commit in enumerate(commits):
        row, _ = SourceCommit.objects.update_or_create(
            source=source,
            sha=commit.sha,
            defaults={
                "committed_at": commit.committed_at,
                "author": commit.author[:200],
                "message": commit.message[:500],
                **({"playbooks": head_playbooks} if index == 0 else {}),
            },
        )
        rows.append(row)
    return rows


def _content_at(source: PlaybookSource, sha: str) -> tuple[str, dict]:
    """The content hash of the tree at `sha` (its submodules fetched, its requirements
    pinned and installed) and the requirements' lock."""
    with tempfile.TemporaryDirectory(prefix="pushbutton-hash-") as tmp:
        tree = Path(tmp)
        git.tree_export(source.mirror_path, sha, tree, url=source.url, mirrors=settings.SOURCES_DIR)
        lock = requirements.requirements_resolve(
            tree, mirrors=settings.SOURCES_DIR, cache=settings.REQUIREMENTS_DIR
        )
        return requirements.content_hash(git.tree_hash(tree), lock.get("hash")), lock


def playbook_version_pin(
    *, source: PlaybookSource, commit: str, path: str
) -> tuple[str, str, dict]:
    """Resolve `commit`, pin its requirements and hash what will run; return (sha,
    content hash, requirements' lock)."""
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts:
        raise ValidationError({"path": "A path inside the repository, without '..'."})
    if not (source.mirror_path / "HEAD").exists():
        raise ValidationError({"source": f"{source} has not been synced yet: sync it first."})
    try:
        sha = git.commit_resolve(source.mirror_path, commit)
        if path not in git.playbooks_list(source.mirror_path, sha):
            raise ValidationError({"path": f"{path} is not a playbook at {sha[:10]}."})
        return sha, *_content_at(source, sha)
    except git.GitError as exc:
        raise ValidationError({"commit": f"Cannot read {commit} from {source}: {exc}"}) from exc
    except requirements.RequirementsError as exc:
        raise ValidationError({"commit": f"Requirements of {sha[:10]}: {exc}"}) from exc


def playbook_version_create(
    *,
    source: PlaybookSource,
    commit: str,
    path: str,
    acting_user=None,
    via: str,
    audit: bool = True,
) -> PlaybookVersion:
    """Pin `path` at `commit` as a new, not yet approved, playbook version."""
    sha, content_hash, lock = playbook_version_pin(source=source, commit=commit, path=path)
    with transaction.atomic():
        version = PlaybookVersion.objects.create(
            source=source, commit=sha, path=path, content_hash=content_hash, requirements=lock
        )
        if audit:
            playbook_version_audit_created(version=version, acting_user=acting_user, via=via)
    return version


def playbook_version_details(version: PlaybookVersion) -> dict:
    """What identifies a playbook version in the audit log (with the pins of its
    requirements, when it has some: what an approval approves)."""
    details = {"commit": version.commit, "path": version.path, "content_hash": version.content_hash}
    if version.requirements:
        details["requirements"] = {
            k: version.requirements.get(k) for k in ("roles", "collections", "hash")
        }
    return details


def playbook_version_audit_created(*, version: PlaybookVersion, acting_user, via: str) -> None:
    audit_record(
        actor=acting_user,
        via=via,
        verb="playbook_version.create",
        obj=version,
        details=playbook_version_details(version),
    )


def playbook_version_approve(*, version: PlaybookVersion, acting_user, via: str) -> PlaybookVersion:
    """Approve a version so actions may run it; who and when are kept."""
    with transaction.atomic():
        before = audit_snapshot(version)
        version.approved_by = acting_user
        version.approved_at = timezone.now()
        version.save(update_fields=["approved_by", "approved_at"])
        audit_record(
            actor=acting_user,
            via=via,
            verb="playbook_version.approve",
            obj=version,
            details={
                **playbook_version_details(version),
                "changes": audit_changes(before, audit_snapshot(version)),
            },
        )
    return version


def action_snapshot(action: Action) -> dict:
    """An action as the audit log compares it: every field of it (as audit_snapshot reads
    them: its description and position too), and what it runs, where, with which form
    in the words below."""
    version = action.playbook_version
    return {
        **audit_snapshot(action),
        "service": action.service.slug,
        "action": action.slug,
        "label": action.label,
        "kind": action.kind,
        "playbook_version": {
            "id": version.pk,
            "path": version.path,
            "commit": version.commit,
            "content_hash": version.content_hash,
        },
        "environments": sorted(action.environments.values_list("slug", flat=True)),
        "timeout": action.timeout,
        "form": action.form,
        "version_field": action.version_field,
    }


def action_delete(*, action: Action, acting_user, via: str, request=None) -> None:
    """Delete an action; the audit log keeps what it was."""
    with transaction.atomic():
        before = action_snapshot(action)
        audit_record(
            actor=acting_user,
            via=via,
            verb="action.delete",
            obj=action,
            service=action.service.slug,
            details={**before, "changes": audit_changes(before, None)},
            request=request,
        )
        action.delete()
