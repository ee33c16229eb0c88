"""The audit log's enums, in the bottom layer: any app imports them."""

from django.db import models


class Via(models.TextChoices):
    """Where a recorded action came from."""

    WEB = "web", "Web"
    API = "api", "API"
    ADMIN = "admin", "Admin"
    CLI = "cli", "Command line"
    SYSTEM = "system", "System"


class Outcome(models.TextChoices):
    SUCCESS = "success", "Success"
    REFUSED = "refused", "Refused"
    FAILURE = "failure", "Failure"
