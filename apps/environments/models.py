import datetime
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

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
        # Automatic runs cannot confirm anything nor enter a second factor.
        if self.auto_promote and (self.confirm_runs or self.require_mfa):
            raise ValidationError(
                {
                    "auto_promote": "An environment whose runs need a confirmation or two-factor "
                    "authentication cannot be promoted to automatically."
                }
            )


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


# --- locks and freeze windows ---------------------------------------------------------
LOCK_MAX_DAYS = 30
REASON_MAX_CHARS = 500


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


def validate_time_zone(value) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(
            f"{value!r} is not a time zone name, e.g. UTC or Europe/Berlin."
        ) from exc


def validate_weekdays(value) -> None:
    if not isinstance(value, list) or not all(
        isinstance(day, int) and not isinstance(day, bool) and 0 <= day <= 6 for day in value
    ):
        raise ValidationError("Weekdays are a list of numbers, 0 (Monday) to 6 (Sunday).")


def default_time_zone() -> str:
    return settings.TIME_ZONE


class FreezeWindow(models.Model):
    """A time when runs on an environment wait: once (from a date to a date) or every
    week (on some days, from a time to a time in a named time zone; an end at or
    before the start runs past midnight into the next day). Only an emergency
    override, by someone with the right, passes it."""

    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="freeze_windows"
    )
    name = models.CharField(max_length=100, help_text='Shown to users, e.g. "Weekend freeze".')
    reason = models.CharField(
        max_length=REASON_MAX_CHARS,
        blank=True,
        help_text="Why runs wait then, shown with the refusal.",
    )
    kind = models.CharField(max_length=8, choices=FreezeKind.choices, default=FreezeKind.WEEKLY)
    starts_at = models.DateTimeField(null=True, blank=True, help_text="One-off windows only.")
    ends_at = models.DateTimeField(null=True, blank=True, help_text="One-off windows only.")
    weekdays = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_weekdays],
        help_text="Weekly windows: the days on which it starts (0 is Monday).",
    )
    start_time = models.TimeField(null=True, blank=True, help_text="Weekly windows only.")
    end_time = models.TimeField(
        null=True,
        blank=True,
        help_text=(
            "Weekly windows only. At or before the start time, the window runs past midnight "
            "(00:00 to 00:00 is the whole day)."
        ),
    )
    time_zone = models.CharField(
        max_length=64,
        default=default_time_zone,
        validators=[validate_time_zone],
        help_text="Weekly windows: the time zone of the times, e.g. Europe/Berlin.",
    )
    active = models.BooleanField(default=True, help_text="Untick to stop enforcing it.")

    class Meta:
        ordering = ["environment", "name"]
        constraints = [
            # What clean() says field by field, kept by the database for every other path.
            models.CheckConstraint(
                condition=models.Q(
                    kind=FreezeKind.ONCE,
                    starts_at__isnull=False,
                    ends_at__isnull=False,
                    ends_at__gt=models.F("starts_at"),
                )
                | models.Q(
                    kind=FreezeKind.WEEKLY, start_time__isnull=False, end_time__isnull=False
                ),
                name="freeze_window_complete",
                violation_error_message="A one-off window needs its start and a later end; "
                "a weekly window its start and end times.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.environment})"

    def clean(self):
        errors: dict[str, str] = {}
        if self.kind == FreezeKind.ONCE:
            if self.starts_at is None:
                errors["starts_at"] = "A one-off window needs its start."
            if self.ends_at is None:
                errors["ends_at"] = "A one-off window needs its end."
            if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
                errors["ends_at"] = "The end must be after the start."
            if self.weekdays:
                errors["weekdays"] = "Only weekly windows have weekdays: clear them."
            if self.start_time is not None:
                errors["start_time"] = "Only weekly windows have a start time: clear it."
            if self.end_time is not None:
                errors["end_time"] = "Only weekly windows have an end time: clear it."
        elif self.kind == FreezeKind.WEEKLY:
            if not self.weekdays:
                errors["weekdays"] = "Choose at least one day."
            if self.start_time is None:
                errors["start_time"] = "A weekly window needs its start time."
            if self.end_time is None:
                errors["end_time"] = "A weekly window needs its end time."
            if self.starts_at is not None:
                errors["starts_at"] = "Only one-off windows have a start date: clear it."
            if self.ends_at is not None:
                errors["ends_at"] = "Only one-off windows have an end date: clear it."
        if errors:
            raise ValidationError(errors)

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        try:
            return zoneinfo.ZoneInfo(self.time_zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return zoneinfo.ZoneInfo("UTC")  # validated on save; never fail a launch over it

    def schedule(self) -> str:
        """The window in words: "every Saturday, Sunday, all day, Europe/Berlin time"."""
        if self.kind == FreezeKind.ONCE:
            if self.starts_at is None or self.ends_at is None:
                return "one-off, dates missing"
            fmt = "%Y-%m-%d %H:%M %Z"
            zone = timezone.get_current_timezone()
            return (
                f"from {self.starts_at.astimezone(zone).strftime(fmt)} to "
                f"{self.ends_at.astimezone(zone).strftime(fmt)}"
            )
        chosen = sorted(set(self.weekdays or []))
        days = (
            "day"
            if chosen == list(range(7))
            else ", ".join(WEEKDAY_NAMES.get(day, "?") for day in chosen)
        )
        start, end = self.start_time, self.end_time
        if start is None or end is None:
            hours = "times missing"
        elif start == end == datetime.time(0, 0):
            hours = "all day"
        else:
            hours = f"from {start:%H:%M} to {end:%H:%M}" + (" the next day" if end <= start else "")
        return f"every {days}, {hours}, {self.time_zone} time"

    def _weekly_span(self, day: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
        """The window that starts on `day` (local), as aware UTC datetimes."""
        zone = self.zone
        start = datetime.datetime.combine(day, self.start_time, tzinfo=zone)
        end_day = day if self.end_time > self.start_time else day + datetime.timedelta(days=1)
        end = datetime.datetime.combine(end_day, self.end_time, tzinfo=zone)
        return start.astimezone(datetime.UTC), end.astimezone(datetime.UTC)

    def in_force_until(self, at: datetime.datetime) -> datetime.datetime | None:
        """When the freeze in force at `at` ends (UTC), or None when it is not in force.
        Back-to-back weekly windows (Saturday and Sunday, all day) count as one."""
        if not self.active:
            return None
        if self.kind == FreezeKind.ONCE:
            if self.starts_at and self.ends_at and self.starts_at <= at < self.ends_at:
                return self.ends_at
            return None
        if not (self.weekdays and self.start_time and self.end_time):
            return None
        local_day = at.astimezone(self.zone).date()
        until = None
        for day in (local_day - datetime.timedelta(days=1), local_day):
            if day.weekday() in self.weekdays:
                start, end = self._weekly_span(day)
                if start <= at < end:
                    until = end
        if until is None:
            return None
        # Follow windows that start where this one ends (at most a week ahead).
        for _ in range(7):
            nxt = until.astimezone(self.zone).date()
            extended = None
            for day in (nxt - datetime.timedelta(days=1), nxt):
                if day.weekday() in self.weekdays:
                    start, end = self._weekly_span(day)
                    if start <= until < end:
                        extended = end
            if extended is None or extended <= until:
                break
            until = extended
        return until
