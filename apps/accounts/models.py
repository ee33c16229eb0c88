import hashlib
import secrets

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from apps.accounts.constants import ALL_TOKEN_SCOPES, Right, Role, TokenScope

__all__ = ["ApiToken", "Grant", "Membership", "Right", "Role", "Team", "TokenScope", "User"]


class User(AbstractUser):
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.DEVELOPER)

    @property
    def display_name(self) -> str:
        return self.get_full_name() or self.username


class Team(models.Model):
    """People who work on the same services. A team owns services and holds grants."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    sso_group = models.CharField(
        "SSO group",
        max_length=200,
        blank=True,
        help_text=(
            "The OpenID Connect group whose members make up this team, applied at each "
            "single sign-on. Leave empty to manage the members here only."
        ),
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="teams", blank=True
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["sso_group"],
                condition=~models.Q(sso_group=""),
                name="uniq_team_sso_group",
            )
        ]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["team", "user"]
        constraints = [
            models.UniqueConstraint(fields=["team", "user"], name="uniq_team_membership")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.team}"


class Grant(models.Model):
    """A team may view (or run the actions of) a service, or every service, in one environment.

    Grants are per environment on purpose: a grant on test or QA never implies production.
    """

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="grants")
    service = models.ForeignKey(
        "catalog.Service",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="grants",
        help_text="Leave empty for every service, now and later.",
    )
    environment = models.ForeignKey(
        "environments.Environment", on_delete=models.CASCADE, related_name="grants"
    )
    right = models.CharField(
        max_length=8,
        choices=Right.choices,
        default=Right.RUN,
        help_text="Run includes view.",
    )

    class Meta:
        ordering = ["team", "environment", "service"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "service", "environment", "right"], name="uniq_grant"
            ),
            # NULL is never equal to NULL in a unique index: "every service" needs its own.
            models.UniqueConstraint(
                fields=["team", "environment", "right"],
                condition=models.Q(service__isnull=True),
                name="uniq_grant_every_service",
            ),
        ]

    def __str__(self) -> str:
        service = self.service or "every service"
        return f"{self.team}: {self.get_right_display().lower()} {service} on {self.environment}"


def default_token_scopes() -> list[str]:
    return list(ALL_TOKEN_SCOPES)


def validate_token_scopes(value) -> None:
    allowed = set(TokenScope.values)
    if not isinstance(value, list) or not value:
        raise ValidationError("Choose at least one scope: read, run, alerts.")
    unknown = [scope for scope in value if scope not in allowed]
    if unknown:
        raise ValidationError(f"Unknown scope: {', '.join(map(str, unknown))} (read, run, alerts).")


class ApiToken(models.Model):
    """A bearer token for the API. Only its SHA-256 is stored; the key is shown once.

    It acts as its user, narrowed by its scopes, its environments (none: all the
    user's) and its expiry: a token never grants more than its user has.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tokens"
    )
    name = models.CharField(max_length=100)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=8, editable=False)
    scopes = models.JSONField(
        default=default_token_scopes,
        validators=[validate_token_scopes],
        help_text="read: GET requests; run: launch and cancel runs.",
    )
    environments = models.ManyToManyField(
        "environments.Environment",
        blank=True,
        related_name="api_tokens",
        help_text=(
            "Limit the token to these environments (empty: every environment its user may "
            "use). An environment that requires two-factor authentication must be listed "
            "to run there."
        ),
    )
    # Set when the token is made with environments: should they all be deleted later,
    # it may run nowhere (an empty list must not widen it to every environment).
    limited = models.BooleanField(default=False, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    @staticmethod
    def new_key() -> str:
        return "pb_" + secrets.token_urlsafe(32)

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and not self.is_expired

    def has_scope(self, scope: str) -> bool:
        return scope in (self.scopes or [])
