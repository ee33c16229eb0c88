"""The catalog's task: a source synced by a worker (after a save in the admin)."""

from celery import shared_task

from apps.audit.constants import Via
from apps.catalog import upgrades


@shared_task(name=upgrades.TASK_SYNC, acks_late=True, ignore_result=True)
def source_sync(source_id: int, user_id: int | None) -> None:
    """Sync the source; its outcome is kept on it (sync_status, sync_message)."""
    upgrades.source_sync_by_id(source_id, user_id, via=Via.ADMIN)
