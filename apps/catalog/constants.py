from django.db import models


class ActionKind(models.TextChoices):
    DEPLOY = "deploy", "Deploy"
    ROLLBACK = "rollback", "Rollback"
    VERIFY = "verify", "Verify"
    OTHER = "other", "Other"


class FieldType(models.TextChoices):
    STRING = "string", "String"
    INTEGER = "integer", "Integer"
    BOOLEAN = "boolean", "Boolean"
    CHOICE = "choice", "Choice"
    MULTI_CHOICE = "multi-choice", "Multiple choice"
    SECRET = "secret", "Secret"


class ParameterInput(models.TextChoices):
    """How a launch's parameters were given: the text fields of a posted form, or a JSON
    object whose values carry their types (the API, and values a run had before)."""

    FORM = "form", "Form fields"
    JSON = "json", "JSON object"


class SyncStatus(models.TextChoices):
    """Where a source's last sync stands (the source's admin page shows it)."""

    NEVER = "never", "Never synced"
    QUEUED = "queued", "Queued"
    SYNCED = "synced", "Synced"
    FAILED = "failed", "Failed"
