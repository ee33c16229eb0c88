"""The audit log's enums and its one permission, in the bottom layer: any app imports them."""

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


# May read the audit log: its pages, exports and API (AuditEvent.Meta.permissions).
# Granted by apps.accounts.backends.RolePermissionBackend to whom
# apps.accounts.permissions.can_read_audit allows.
READ_LOG_CODENAME = "read_log"
READ_LOG = f"audit.{READ_LOG_CODENAME}"
