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
