"""`audit_recorded`: sent once a row of the audit log has committed, with `event` (the
AuditEvent). Apps above hang on it what follows a refusal or a lock (notifications),
without the services that write those rows knowing of them:

    from apps.audit.hooks import audit_recorded
    audit_recorded.connect(my_receiver, dispatch_uid="myapp.my_receiver")

A receiver that raises is logged and does not stop the others, nor the write.
"""

import logging

from django.dispatch import Signal

log = logging.getLogger(__name__)

audit_recorded = Signal()


def emit_recorded(event) -> None:
    for receiver, result in audit_recorded.send_robust(sender=type(event), event=event):
        if isinstance(result, Exception):
            log.error("audit_recorded of row %s failed in %r", event.pk, receiver, exc_info=result)
