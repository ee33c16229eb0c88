import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from apps.environments.constants import (
    LOCK_MAX_DAYS,
    REASON_MAX_CHARS,
    CredentialKind,
    WhenLocked,
)

# Freeze windows live in apps/environments/freezes.py, imported here so that the model
# belongs to this app's models, and so that migration 0007 finds its validators and
# default where it names them (apps.environments.models.validate_weekdays, …).
from apps.environments.freezes import (
    FreezeWindow,
    default_time_zone,
    validate_time_zone,
    validate_weekdays,
)
from apps.environments.inventories import inventory_path_errors

__all__ = [
    "Credential",
    "Environment",
    "EnvironmentLock",
    "FreezeWindow",
    "default_queue",
    "default_time_zone",
    "validate_inventory",
    "validate_time_zone",
    "validate_weekdays",
]

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
        blank=True,
        validators=[validate_inventory],
        help_text=(
            'Ansible inventory as JSON: {"all": {"hosts": {"web1": {...}}, "vars": {...}}}. '
            "Leave it empty ({}) when the inventory is a path in a playbook source."
        ),
    )
    inventory_source = models.ForeignKey(
        "catalog.PlaybookSource",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="inventory_environments",
        help_text=(
            "Or the inventory is kept in this playbook source: runs here must run its "
            "playbooks, and use the inventory of the very commit they run."
        ),
    )
    inventory_path = models.CharField(
        max_length=300,
        blank=True,
        help_text=(
            "Path of the inventory in that source: a file (INI, YAML), a directory, or an "
            "inventory plugin's configuration that needs no network (yaml, constructed)."
        ),
    )
    queue = models.CharField(
        max_length=100,
        default=default_queue,
        validators=[QUEUE_NAME],
        help_text="Celery queue its runs go to; only workers consuming it run them.",
    )
    require_mfa = models.BooleanField(
        "require two-factor authentication",
        default=False,
        help_text=(
            "Running here needs, in the portal, an authenticator app confirmed in the last "
            "few minutes; through the API, a token limited to this environment."
        ),
    )

    require_verified = models.BooleanField(
        "require a verified version",
        default=False,
        help_text=(
            "Promotion rule: a deploy here needs its version deployed and then verified "
            "(the service's verify action succeeded) on the environment before this one."
        ),
    )
    auto_promote = models.BooleanField(
        "promote automatically",
        default=False,
        help_text=(
            "When a version is verified on the environment before this one, deploy it here "
            "by itself, on behalf of whoever started the chain."
        ),
    )
    auto_rollback = models.BooleanField(
        "roll back automatically",
        default=False,
        help_text=(
            "When the service's verify action fails after a deploy here, roll back at once "
            "to the previous version verified here (a rollback run marked automatic, on "
            "behalf of the deployer, subject to locks and rights). Never twice in a row: a "
            "failed automatic rollback stops and tells."
        ),
    )
    when_locked = models.CharField(
        "when the service is busy",
        max_length=8,
        choices=WhenLocked.choices,
        default=WhenLocked.REFUSE,
        help_text=(
            "What a deploy does when another run of the service holds its lock here: refused "
            "(409), or queued to start when the lock frees, in arrival order, each rule "
            "checked again then; an older version is skipped once a newer one succeeded. "
            "A launch may ask otherwise (the API's when_locked)."
        ),
    )
    confirm_runs = models.BooleanField(
        "confirm each run",
        default=False,
        help_text="A run here needs a confirmation step showing what will change (production).",
    )
    emergency_teams = models.ManyToManyField(
        "accounts.Team",
        blank=True,
        related_name="emergency_environments",
        help_text=(
            "Members of these teams may override a freeze window here in an emergency, "
            "giving a reason (they still need a run grant). Locks are never overridden."
        ),
    )

    class Meta:
        ordering = ["order", "name"]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        errors = self._inventory_errors()
        # Automatic runs cannot confirm anything nor enter a second factor.
        if self.auto_promote and (self.confirm_runs or self.require_mfa):
            errors["auto_promote"] = (
                "An environment whose runs need a confirmation or two-factor "
                "authentication cannot be promoted to automatically."
            )
        if errors:
            raise ValidationError(errors)

    def _inventory_errors(self) -> dict[str, str]:
        """Exactly one inventory: JSON, or a source and a path in it."""
        from_source = bool(self.inventory_source_id or self.inventory_path)
        if self.inventory and from_source:
            return {
                "inventory": "Give the inventory as JSON or as a path in a playbook source, "
                "not both: empty this one ({}) or the source and path."
            }
        if not self.inventory and not from_source:
            return {"inventory": "Give an inventory: JSON here, or a path in a playbook source."}
        if from_source and not self.inventory_source_id:
            return {"inventory_source": "Choose the playbook source the inventory path is in."}
        if from_source and not self.inventory_path:
            return {"inventory_path": "Give the inventory's path in the source."}
        if from_source and (errors := inventory_path_errors(self.inventory_path)):
            return {"inventory_path": errors[0]}
        return {}

    @property
    def inventory_in_source(self) -> bool:
        return bool(self.inventory_source_id and self.inventory_path)


class Credential(models.Model):
    """A secret Ops hands to the runs of some environments (and, optionally, only to
    some actions there). The value is kept encrypted and never shown again; the
    worker gives it to ansible-runner as an ssh-agent key, a password prompt's
    answer or an extra variable."""

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=CredentialKind.choices)
    variable = models.CharField(
        max_length=64,
        blank=True,
        help_text="Secret variables only: the name the playbook reads it as.",
    )
    description = models.TextField(blank=True)
    environments = models.ManyToManyField(
        Environment,
        related_name="credentials",
        help_text="Runs on these environments get the credential.",
    )
    actions = models.ManyToManyField(
        "catalog.Action",
        blank=True,
        related_name="credentials",
        help_text="Only these actions get it; none chosen: every action on those environments.",
    )
    # Fernet tokens (portal.crypto): never the values themselves.
    secret_encrypted = models.TextField(editable=False)
    passphrase_encrypted = models.TextField(blank=True, editable=False)
    fingerprint = models.CharField(
        max_length=100, blank=True, editable=False, help_text="SSH keys: the public key's SHA256."
    )
    secret_set_at = models.DateTimeField(null=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def has_secret(self) -> bool:
        return bool(self.secret_encrypted)


# --- locks ---------------------------------------------------------------------------


class EnvironmentLock(models.Model):
    """Someone stopped every run on an environment (or of one service there) for a while,
    with a reason. It ends when it expires or is released; it is never overridden."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="locks")
    service = models.ForeignKey(
        "catalog.Service",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="environment_locks",
        help_text="Empty: every service on the environment.",
    )
    reason = models.CharField(max_length=REASON_MAX_CHARS)
    expires_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="environment_locks",
    )
    # Copied, so the lock still says who made (and released) it after the user is deleted.
    created_by_name = models.CharField(max_length=150)
    created_at = models.DateTimeField(default=timezone.now)
    released_at = models.DateTimeField(null=True, blank=True)
    released_by_name = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(expires_at__gt=models.F("created_at")),
                name="envlock_expires_after_creation",
                violation_error_message="The expiry must be after the lock's creation.",
            )
        ]
        indexes = [
            # The banner and every launch ask "which locks hold now?": only unreleased ones.
            models.Index(
                fields=["environment", "expires_at"],
                condition=models.Q(released_at__isnull=True),
                name="envlock_open_idx",
            )
        ]

    def __str__(self) -> str:
        what = f"{self.service} on {self.environment}" if self.service_id else self.environment
        return f"Lock of {what} by {self.created_by_name}"

    def is_active(self, at=None) -> bool:
        return self.released_at is None and self.expires_at > (at or timezone.now())

    def clean(self):
        errors = {}
        if self.reason is not None and not self.reason.strip():
            errors["reason"] = "Say why: the reason is shown to everyone who is stopped."
        if self.expires_at is not None and self._state.adding:
            now = timezone.now()
            if self.expires_at <= now:
                errors["expires_at"] = "The expiry must be in the future."
            elif self.expires_at > now + datetime.timedelta(days=LOCK_MAX_DAYS):
                errors["expires_at"] = f"A lock lasts at most {LOCK_MAX_DAYS} days."
        if errors:
            raise ValidationError(errors)
