from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "apps.workers"
    label = "workers"

    def ready(self):
        # A worker process announces itself (and then every WORKER_HEARTBEAT_SECONDS)
        # from Celery's own signals; in the web process they never fire.
        from apps.workers import heartbeat

        heartbeat.connect()
