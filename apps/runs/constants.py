from django.db import models


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCESSFUL = "successful", "Successful"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"
    TIMED_OUT = "timed_out", "Timed out"
    LOST = "lost", "Lost"


FINAL_STATUSES = frozenset(
    {
        RunStatus.SUCCESSFUL,
        RunStatus.FAILED,
        RunStatus.CANCELED,
        RunStatus.TIMED_OUT,
        RunStatus.LOST,
    }
)
ACTIVE_STATUSES = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})
