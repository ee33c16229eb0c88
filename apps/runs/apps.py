from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "apps.runs"
    label = "runs"

    def ready(self):
        # What follows a run hangs on its end, explicitly, here (see apps.runs.signals).
        from apps.runs.services.follow_ups import run_ended_follow_ups
        from apps.runs.services.waiting import run_ended_queue_advance
        from apps.runs.signals import run_ended

        run_ended.connect(run_ended_follow_ups, dispatch_uid="runs.follow_ups")
        # The deploy lock is free: the next run waiting in line may start.
        run_ended.connect(run_ended_queue_advance, dispatch_uid="runs.deploy_queue")
