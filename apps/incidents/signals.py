"""`incident_opened` and `incident_resolved`, sent after the commit with `incident`:
notifications hang on them (connected in their AppConfig.ready)."""

import logging

from django.dispatch import Signal

log = logging.getLogger(__name__)

incident_opened = Signal()
incident_resolved = Signal()


def emit(signal: Signal, *, incident) -> None:
    for receiver, result in signal.send_robust(sender=type(incident), incident=incident):
        if isinstance(result, Exception):
            log.error("Incident %s: %r failed", incident.pk, receiver, exc_info=result)
