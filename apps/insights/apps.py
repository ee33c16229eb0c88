from django.apps import AppConfig


class InsightsConfig(AppConfig):
    name = "apps.insights"
    label = "insights"

    def ready(self) -> None:
        from apps.incidents.signals import incident_opened
        from apps.insights.changes import incident_opened_refresh, run_ended_refresh
        from apps.runs.signals import run_ended

        run_ended.connect(run_ended_refresh, dispatch_uid="insights.run_ended_refresh")
        incident_opened.connect(
            incident_opened_refresh, dispatch_uid="insights.incident_opened_refresh"
        )
