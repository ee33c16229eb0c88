"""The environments app's enums and limits, in one place."""

from django.db import models


class CredentialKind(models.TextChoices):
    SSH_KEY = "ssh_key", "SSH private key"
    BECOME_PASSWORD = "become_password", "Become (sudo) password"
    VAULT_PASSWORD = "vault_password", "Ansible Vault password"
    SECRET_VARIABLE = "secret_variable", "Secret variable"


class WhenLocked(models.TextChoices):
    """What a deploy does when another run holds the service's lock on the environment."""

    REFUSE = "refuse", "Refuse it (409)"
    QUEUE = "queue", "Queue it: it starts when the lock frees, in arrival order"


class FreezeKind(models.TextChoices):
    ONCE = "once", "One-off (from a date to a date)"
    WEEKLY = "weekly", "Every week (chosen days, from a time to a time)"


WEEKDAYS = [
    (0, "Monday"),
    (1, "Tuesday"),
    (2, "Wednesday"),
    (3, "Thursday"),
    (4, "Friday"),
    (5, "Saturday"),
    (6, "Sunday"),
]
WEEKDAY_NAMES = dict(WEEKDAYS)

# How long a lock may last, and how long the reason of a lock or a freeze window may be.
LOCK_MAX_DAYS = 30
REASON_MAX_CHARS = 500
