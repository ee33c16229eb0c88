from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "apps.incidents"
    label = "incidents"

    def ready(self):
        # A later successful deploy or rollback resolves what was open there.
        from apps.incidents.services import run_ended_resolve
        from apps.runs.signals import run_ended

        run_ended.connect(run_ended_resolve, dispatch_uid="incidents.resolve")
