from django.db import models


class RunStatus(models.TextChoices):
    # In the deploy queue: another run holds the service's lock there (or a freeze or a
    # lock of the environment keeps it back); it starts when its turn comes.
    WAITING = "waiting", "Waiting"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCESSFUL = "successful", "Successful"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"
    TIMED_OUT = "timed_out", "Timed out"
    LOST = "lost", "Lost"
    # Skipped in the deploy queue: a newer version succeeded there while it waited.
    SUPERSEDED = "superseded", "Superseded"


FINAL_STATUSES = frozenset(
    {
        RunStatus.SUCCESSFUL,
        RunStatus.FAILED,
        RunStatus.CANCELED,
        RunStatus.TIMED_OUT,
        RunStatus.LOST,
        RunStatus.SUPERSEDED,
    }
)
# Those holding the deploy lock (a waiting run does not: it waits for it).
ACTIVE_STATUSES = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})


# The longest version a run records (the column's length): a longer one in the form is
# refused at launch, and one a playbook reports is cut to it when the run ends.
VERSION_MAX_CHARS = 200

# The tasks, named where the services send them: the services do not import the task
# module (which imports them).
TASK_EXECUTE = "apps.runs.tasks.run_execute"
TASK_FOLLOW_UPS = "apps.runs.tasks.run_follow_ups"


class RefusalKind(models.TextChoices):
    """Why a launch was refused, in a word: kept in its audit row's details ("kind") and
    counted by /metrics. A refusal that names none gets the one of its HTTP status."""

    FORBIDDEN = "forbidden", "No right to run it there"
    INVALID = "invalid", "Malformed request"
    PARAMETERS = "parameters", "Parameters do not fit the form"
    NOT_APPROVED = "not_approved", "Playbook version not approved"
    BLOCKED = "blocked", "Environment locked or frozen"
    LOCKED = "locked", "Deploy lock held"
    PROMOTION = "promotion", "Promotion rule"
    CONFLICT = "conflict", "Other conflict"
    IDEMPOTENCY = "idempotency", "Idempotency key reused"
    NO_WORKER = "no_worker", "No live worker on the queue"
    UNAVAILABLE = "unavailable", "Broker unavailable"


REFUSAL_KIND_BY_STATUS = {
    400: RefusalKind.INVALID,
    403: RefusalKind.FORBIDDEN,
    409: RefusalKind.CONFLICT,
    422: RefusalKind.IDEMPOTENCY,
    503: RefusalKind.UNAVAILABLE,
}
