from django.db import models


class Recurrence(models.TextChoices):
    """How a schedule says when it fires."""

    CRON = "cron", "Cron expression"
    RRULE = "rrule", "RRULE (RFC 5545)"


class WhenBusy(models.TextChoices):
    """What a firing does while the run of the schedule's previous firing still goes."""

    SKIP = "skip", "Skip the firing"
    QUEUE = "queue", "Queue it in the deploy queue"


class Outcome(models.TextChoices):
    """What became of one firing."""

    FIRED = "fired", "Fired"
    SKIPPED = "skipped", "Skipped"
    MISSED = "missed", "Missed"
    REFUSED = "refused", "Refused"


# The names of the schedule's fields its form and the API use.
NAME_MAX_CHARS = 100
EXPRESSION_MAX_CHARS = 500
