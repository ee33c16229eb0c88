from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

QUEUE_NAME = RegexValidator(r"^[A-Za-z0-9_.-]+$", "Letters, digits, '.', '_' and '-' only.")


def validate_inventory(value) -> None:
    """An Ansible inventory in its YAML/JSON shape: groups with hosts, children and vars."""
    if not isinstance(value, dict) or not value:
        raise ValidationError('The inventory is an object of groups, e.g. {"all": {"hosts": {}}}.')
    for group, body in value.items():
        if not isinstance(body, dict):
            raise ValidationError(f"Group {group!r} must be an object.")
        unknown = set(body) - {"hosts", "children", "vars"}
        if unknown:
            raise ValidationError(
                f"Group {group!r} has unknown keys: {', '.join(sorted(unknown))} "
                "(allowed: hosts, children, vars)."
            )
        for key in ("hosts", "vars"):
            if key in body and not isinstance(body[key], dict | type(None)):
                raise ValidationError(f"{group}.{key} must be an object.")
        for host, host_vars in (body.get("hosts") or {}).items():
            if not isinstance(host_vars, dict | type(None)):
                raise ValidationError(f"Variables of host {host!r} must be an object.")
        if "children" in body:
            validate_inventory(body["children"] or {"_": {}})


def default_queue() -> str:
    return settings.CELERY_TASK_DEFAULT_QUEUE


class Environment(models.Model):
    """Where a service runs: test, qa, production. Lower `order` comes first."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    order = models.PositiveIntegerField(
        default=0, help_text="Promotion order: test < qa < production."
    )
    description = models.TextField(blank=True)
    inventory = models.JSONField(
        default=dict,
        validators=[validate_inventory],
        help_text='Ansible inventory as JSON: {"all": {"hosts": {"web1": {...}}, "vars": {...}}}.',
    )
    queue = models.CharField(
        max_length=100,
        default=default_queue,
        validators=[QUEUE_NAME],
        help_text="Celery queue its runs go to; only workers consuming it run them.",
    )

    class Meta:
        ordering = ["order", "name"]

    def __str__(self) -> str:
        return self.name
