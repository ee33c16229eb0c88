import logging

from celery import shared_task

from apps.schedules import services

log = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def schedules_fire() -> int:
    """Periodic (beat): fire the schedules that are due; record those missed."""
    firings = services.schedules_fire_due()
    for firing in firings:
        log.info("Schedule %s: %s (%s).", firing.schedule_id, firing.outcome, firing.reason or "ok")
    return len(firings)
