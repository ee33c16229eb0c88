"""Upgrading a playbook: what a sync found, the review before Approve, approving and moving
actions in one step, and an action's version history.

Services (what writes) and selectors (what reads) of one feature, kept beside the rest
of the catalog's services so that the sync itself (services.source_sync) stays as it is.
"""

import logging
from dataclasses import dataclass, field

from celery import current_app
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from apps.audit.models import AuditEvent
from apps.audit.services import audit_changes, audit_record
from apps.catalog import git
from apps.catalog.constants import SyncStatus
from apps.catalog.models import Action, PlaybookSource, PlaybookVersion
from apps.catalog.services import action_snapshot, playbook_version_approve, source_sync

log = logging.getLogger(__name__)

TASK_SYNC = "apps.catalog.tasks.source_sync"
FILES_NAMED = 4  # a sync's message names this many changed files, then counts the rest


# --- syncing, and saying what is new ----------------------------------------------------
def source_sync_report(*, source: PlaybookSource, acting_user, via: str) -> str:
    """Sync `source` (services.source_sync) and keep on it what the sync found: its status,
    when it ended, and a message such as "deploy.yml changed in 3 commits since 1a2b3c4;
    version 9f8e7d6 waits for approval". Returns the message; a failure is kept too and
    raised as a ValidationError."""
    before = source.sync_head
    try:
        commits = source_sync(source=source, acting_user=acting_user, via=via)
    except ValidationError as exc:
        _sync_result(source, SyncStatus.FAILED, " ".join(exc.messages))
        raise
    head = commits[0].sha if commits else ""
    try:
        message = sync_news(source=source, before_head=before, head=head)
    except git.GitError as exc:  # the sync itself went through: say so, and why no more
        message = f"Synced to {head[:7]}; what changed could not be read: {exc}"
    _sync_result(source, SyncStatus.SYNCED, message, head=head)
    return message


def _sync_result(source: PlaybookSource, status: str, message: str, *, head: str = "") -> None:
    source.sync_status, source.sync_message = status, message
    source.sync_finished_at = timezone.now()
    fields = ["sync_status", "sync_message", "sync_finished_at"]
    if head:
        source.sync_head = head
        fields.append("sync_head")
    source.save(update_fields=fields)


def sync_news(*, source: PlaybookSource, before_head: str, head: str) -> str:
    """What a sync brought, in one sentence per group of versions waiting for approval."""
    if not head:
        return f"{source}: the branch {source.branch} has no commits."
    waiting = list(
        PlaybookVersion.objects.filter(source=source, commit=head, approved_at__isnull=True)
    )
    if not waiting:
        if head == before_head:
            return f"{source}: nothing new (head {head[:7]})."
        return f"{source}: head {head[:7]}, with no playbook waiting for approval."
    # Versions compared with the same base (the commit their actions use now) share a sentence.
    groups: dict[str | None, list[str]] = {}
    for version in waiting:
        base = version_in_use(version)
        groups.setdefault(base.commit if base else None, []).append(version.path)
    sentences = []
    for base, group in groups.items():
        paths = ", ".join(sorted(group))
        if base is None:
            noun = "playbooks" if len(group) > 1 else "playbook"
            sentences.append(f"new {noun} {paths}; version {head[:7]} waits for approval")
            continue
        count = git.commits_count(source.mirror_path, base, head)
        changed = [c.path for c in git.files_changed(source.mirror_path, base, head)]
        named = ", ".join(changed[:FILES_NAMED]) or "no file"
        if len(changed) > FILES_NAMED:
            named += f" and {len(changed) - FILES_NAMED} more files"
        sentences.append(
            f"{named} changed in {count} commit{'s' if count != 1 else ''} since {base[:7]}; "
            f"version {head[:7]} ({paths}) waits for approval"
        )
    prefix = "nothing new since the last sync, but " if head == before_head else ""
    return f"{source}: {prefix}{'. '.join(sentences)}."


def source_sync_enqueue(*, source: PlaybookSource, acting_user) -> None:
    """Have a worker sync `source` after the caller's transaction commits; the outcome shows
    on the source (sync_status, sync_message)."""
    source.sync_status, source.sync_message = SyncStatus.QUEUED, "Waiting for a worker."
    source.save(update_fields=["sync_status", "sync_message"])
    user_id = acting_user.pk if acting_user is not None else None

    def send():
        try:
            current_app.send_task(
                TASK_SYNC, args=[source.pk, user_id], queue=settings.CELERY_HOUSEKEEPING_QUEUE
            )
        except (OperationalError, OSError) as exc:
            log.warning("Sync of %s not queued: %s", source, exc)
            _sync_result(source, SyncStatus.FAILED, f"Not queued (the task queue: {exc}).")

    transaction.on_commit(send)


def source_sync_by_id(source_id: int, user_id: int | None, *, via: str) -> None:
    """The task's work: sync the source if it still exists, as the user who asked."""
    source = PlaybookSource.objects.filter(pk=source_id).first()
    if source is None:
        return
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    try:
        source_sync_report(source=source, acting_user=user, via=via)
    except ValidationError:
        return  # kept on the source by source_sync_report
    except Exception as exc:
        # Whatever broke, the source's page must not say "queued" for ever.
        _sync_result(source, SyncStatus.FAILED, f"Sync of {source} failed: {exc}")
        raise


# --- the review before Approve --------------------------------------------------------------
def version_in_use(version: PlaybookVersion) -> PlaybookVersion | None:
    """The version of the same playbook (source and path) that actions use now, the most
    recently approved of them; else the last approved one; None for a first version."""
    others = PlaybookVersion.objects.filter(source=version.source, path=version.path).exclude(
        pk=version.pk
    )
    used = others.filter(actions__isnull=False).distinct().order_by("-approved_at", "-pk").first()
    return used or others.filter(approved_at__isnull=False).order_by("-approved_at", "-pk").first()


@dataclass
class VersionReview:
    version: PlaybookVersion
    base: PlaybookVersion | None
    changes: list = field(default_factory=list)  # git.FileChange
    diff: str = ""
    commits: list = field(default_factory=list)  # git.Commit
    files: list = field(default_factory=list)  # (path, text or None)
    approvals: list = field(default_factory=list)  # PlaybookVersion, approved, newest first
    actions: list = field(default_factory=list)  # (action, preselected)
    error: str = ""


def playbook_version_review(
    *, version: PlaybookVersion, base: PlaybookVersion | None = None
) -> VersionReview:
    """All that Approve should show: the tree's text, its diff against `base` (by default
    the version the actions use now), the commits in between with their authors, who
    approved the playbook's versions before, and the actions that could move to it."""
    base = base or version_in_use(version)
    review = VersionReview(version=version, base=base)
    mirror = version.source.mirror_path
    review.approvals = list(
        PlaybookVersion.objects.filter(
            source=version.source, path=version.path, approved_at__isnull=False
        )
        .select_related("approved_by")
        .order_by("-approved_at")[:20]
    )
    actions = Action.objects.filter(
        playbook_version__source=version.source, playbook_version__path=version.path
    ).select_related("service", "playbook_version")
    try:
        review.files = git.tree_texts(mirror, version.commit)
        review.changes = git.files_changed(mirror, base.commit if base else None, version.commit)
        review.diff = git.tree_diff(mirror, base.commit if base else None, version.commit)
        review.commits = git.commits_between(mirror, base.commit if base else None, version.commit)
        for action in actions:
            current = action.playbook_version
            older = current.pk != version.pk and git.is_ancestor(
                mirror, current.commit, version.commit
            )
            review.actions.append((action, older))
    except git.GitError as exc:
        review.error = f"The repository could not be read (sync the source): {exc}"
        review.actions = [(action, False) for action in actions]
    # The playbook itself first, then the rest of the tree in path order.
    review.files.sort(key=lambda item: (item[0] != version.path, item[0]))
    return review


def diff_lines(diff: str) -> list[tuple[str, str]]:
    """A unified diff's lines, each with what it is: file, hunk, add, del or context."""
    lines = []
    for line in diff.splitlines():
        if line.startswith(("diff --git", "+++", "---", "new file", "deleted file", "index ")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "context"
        lines.append((kind, line))
    return lines


# --- approving and moving actions in one step -------------------------------------------
def playbook_version_approve_and_move(
    *,
    version: PlaybookVersion,
    actions,
    acting_user,
    via: str,
    request=None,
) -> list[Action]:
    """Approve `version` (if it is not yet) and point each of `actions` at it, in one
    transaction: one audit row for the approval, one per action moved. Only actions that
    run the same playbook (source and path) can move; returns those moved."""
    with transaction.atomic():
        version = PlaybookVersion.objects.select_for_update().get(pk=version.pk)
        if not version.is_approved:
            playbook_version_approve(version=version, acting_user=acting_user, via=via)
        moved = []
        for action in (
            Action.objects.select_for_update()
            .filter(pk__in=[a.pk for a in actions])
            .select_related("service", "playbook_version")
        ):
            current = action.playbook_version
            if current.pk == version.pk:
                continue
            if (current.source_id, current.path) != (version.source_id, version.path):
                raise ValidationError(
                    f"{action} runs {current.path} of {current.source}, not {version.path}."
                )
            before = action_snapshot(action)
            action.playbook_version = version
            action.save(update_fields=["playbook_version"])
            after = action_snapshot(action)
            audit_record(
                actor=acting_user,
                via=via,
                verb="action.update",
                obj=action,
                service=action.service.slug,
                details={
                    **after,
                    "changes": audit_changes(before, after),
                    "reason": f"moved on approval of playbook version #{version.pk}",
                },
                request=request,
            )
            moved.append(action)
    return moved


# --- an action's version history ------------------------------------------------------------
@dataclass(frozen=True)
class VersionChange:
    at: object  # datetime
    actor: str
    version_id: int | None
    path: str
    commit: str
    content_hash: str


def action_version_history(*, action: Action) -> list[VersionChange]:
    """The playbook versions an action ran, newest first, read from the audit log (append
    only, hash-chained): each row of its creation or change that names another version."""
    rows = AuditEvent.objects.filter(
        object_type=Action._meta.label_lower,
        object_id=str(action.pk),
        verb__in=["action.create", "action.update"],
    ).order_by("id")
    history, last = [], None
    for row in rows.only("created_at", "actor_name", "details"):
        pinned = (row.details or {}).get("playbook_version")
        if not isinstance(pinned, dict) or pinned.get("id") == last:
            continue
        last = pinned.get("id")
        history.append(
            VersionChange(
                at=row.created_at,
                actor=row.actor_name or "(system)",
                version_id=last,
                path=pinned.get("path", ""),
                commit=pinned.get("commit", ""),
                content_hash=pinned.get("content_hash", ""),
            )
        )
    return history[::-1]
