"""Sending work to the workers through the Celery broker.

Tasks are sent by name (apps.runs.constants.TASK_*), so the services need not import the
task module, which imports them."""

import logging
import time

from celery import current_app
from django.conf import settings
from kombu.exceptions import OperationalError as QueueError

log = logging.getLogger(__name__)

QUEUE_DOWN = (
    "The task queue (the Celery broker) cannot be reached, so nothing was launched. "
    "Try again in a minute; if it lasts, tell Ops."
)
QUEUE_ERRORS = (QueueError, OSError)


# When the broker last answered, per broker URL (monotonic seconds).
_answered: dict[str, float] = {}


def queue_unreachable_reason() -> str | None:
    """Why a run could not be queued now (the broker is down), or None.

    A broker that answered less than QUEUE_CHECK_FRESH_SECONDS ago is not asked again
    (each ask opens a connection: under many launches a second it was a tenth of a
    launch's cost); one that drops meanwhile is met by the enqueue, and the run ends
    failed at once, never left queued."""
    url = current_app.conf.broker_write_url or current_app.conf.broker_url or ""
    now = time.monotonic()
    if now - _answered.get(url, float("-inf")) < settings.QUEUE_CHECK_FRESH_SECONDS:
        return None
    try:
        with current_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=0, timeout=settings.QUEUE_CHECK_TIMEOUT)
    except QUEUE_ERRORS as exc:
        _answered.pop(url, None)
        log.warning("The Celery broker cannot be reached: %s", exc)
        return QUEUE_DOWN
    _answered[url] = now
    return None


def task_send(name: str, *, args: list, queue: str, **options) -> None:
    """Send task `name` to `queue`; raises one of QUEUE_ERRORS when the broker refuses."""
    current_app.send_task(name, args=args, queue=queue, **options)
