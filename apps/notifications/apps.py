from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "apps.notifications"
    label = "notifications"

    def ready(self):
        # What is told hangs on the run's two moments and on the audit log (refusals,
        # locks): explicitly, here.
        from apps.audit.hooks import audit_recorded
        from apps.incidents.signals import incident_opened, incident_resolved
        from apps.notifications import receivers
        from apps.runs.signals import run_ended, run_started

        run_started.connect(receivers.run_started_notify, dispatch_uid="notifications.started")
        run_ended.connect(receivers.run_ended_notify, dispatch_uid="notifications.ended")
        audit_recorded.connect(receivers.audit_notify, dispatch_uid="notifications.audit")
        incident_opened.connect(receivers.incident_notify, dispatch_uid="notifications.opened")
        incident_resolved.connect(receivers.incident_notify, dispatch_uid="notifications.resolved")
