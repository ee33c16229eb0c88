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
    confirm_runs = models.BooleanField(
        "confirm each run",
        default=False,
        help_text="A run here needs a confirmation step showing what will change (production).",
    )

    class Meta:
        ordering = ["order", "name"]

    def __str__(self) -> str:
        return self.name


class CredentialKind(models.TextChoices):
    SSH_KEY = "ssh_key", "SSH private key"
    BECOME_PASSWORD = "become_password", "Become (sudo) password"
    VAULT_PASSWORD = "vault_password", "Ansible Vault password"
    SECRET_VARIABLE = "secret_variable", "Secret variable"


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
