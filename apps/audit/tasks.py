"""Periodic work (Celery beat, see CELERY_BEAT_SCHEDULE): checkpoints and verification."""

import logging
from pathlib import Path

from celery import shared_task
from django.conf import settings

from apps.audit.checkpoints import CheckpointError, audit_checkpoint_create
from apps.audit.verification import audit_verify, checkpoints_load

log = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def audit_checkpoint() -> None:
    """Sign and publish a checkpoint of the audit log's head."""
    if not settings.AUDIT_SIGNING_KEY:
        log.warning("No AUDIT_SIGNING_KEY: no audit checkpoint signed.")
        return
    try:
        checkpoint = audit_checkpoint_create()
    except CheckpointError as exc:
        log.error("Audit checkpoint not signed: %s", exc)
        return
    if checkpoint.publish_errors:
        log.error(
            "Audit checkpoint #%s not published: %s", checkpoint.sequence, checkpoint.publish_errors
        )


@shared_task(ignore_result=True)
def audit_chain_verify() -> None:
    """Walk the chain against the published checkpoints; the result shows on the audit page."""
    path = Path(settings.AUDIT_CHECKPOINT_FILE) if settings.AUDIT_CHECKPOINT_FILE else None
    try:
        checkpoints, notes = checkpoints_load(path if path and path.exists() else None)
    except CheckpointError as exc:
        checkpoints, notes = [], [f"Checkpoints not used: {exc}"]
    report = audit_verify(checkpoints=checkpoints, notes=notes)
    if not report.ok:
        log.error("The audit log does not verify: %s", report.problems[0])
