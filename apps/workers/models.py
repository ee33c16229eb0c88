"""The Celery workers, as they announce themselves: one row per worker (Celery's node
name, e.g. pushbutton@web1), written by the worker process itself."""

from django.db import models


class Worker(models.Model):
    hostname = models.CharField(max_length=200, unique=True, help_text="Celery's node name.")
    queues = models.JSONField(default=list, help_text="The queues it consumes.")
    concurrency = models.PositiveIntegerField(default=0)
    pid = models.IntegerField(null=True, blank=True)
    pushbutton_version = models.CharField(max_length=50, blank=True)
    ansible_core_version = models.CharField(max_length=50, blank=True)
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(help_text="Its last heartbeat.")
    stopped_at = models.DateTimeField(
        null=True, blank=True, help_text="When it shut down cleanly (empty while it runs)."
    )

    class Meta:
        ordering = ["hostname"]

    def __str__(self) -> str:
        return self.hostname
