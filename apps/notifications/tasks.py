"""The tasks that send notifications (on the default queue, never an environment's)."""

from celery import shared_task

from apps.notifications import services


@shared_task(name=services.TASK_DELIVER, acks_late=True, ignore_result=True)
def delivery_send(delivery_id: str) -> None:
    """One attempt at a delivery (retries are sent again by it, with their pause)."""
    services.delivery_send(delivery_id)


@shared_task(name="apps.notifications.tasks.deliveries_due", ignore_result=True)
def deliveries_due() -> int:
    """Periodic (beat): deliveries whose task was lost are sent again."""
    return services.deliveries_due()
