from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models

from apps.catalog import git
from apps.catalog.constants import ActionKind, SyncStatus
from apps.catalog.parameters import form_definition_errors


class PlaybookSource(models.Model):
    """A git repository of playbooks that Ops maintains (a local path or a URL)."""

    name = models.CharField(max_length=100, unique=True)
    url = models.CharField(max_length=500, help_text="Git URL or local path of the repository.")
    branch = models.CharField(max_length=100, default="main")
    synced_at = models.DateTimeField(null=True, blank=True)
    sync_error = models.TextField(blank=True)
    # The last sync's outcome, whoever started it (a save, "Sync now", the list's action).
    sync_status = models.CharField(
        max_length=16, choices=SyncStatus.choices, default=SyncStatus.NEVER
    )
    sync_message = models.TextField(blank=True, help_text="What the last sync found.")
    sync_finished_at = models.DateTimeField(null=True, blank=True)
    sync_head = models.CharField(
        max_length=40, blank=True, help_text="The branch's head at the last successful sync."
    )

    def __str__(self) -> str:
        return self.name

    @property
    def mirror_path(self):
        return git.mirror_dir(self.url, settings.SOURCES_DIR)


class SourceCommit(models.Model):
    source = models.ForeignKey(PlaybookSource, on_delete=models.CASCADE, related_name="commits")
    sha = models.CharField(max_length=40)
    committed_at = models.DateTimeField()
    author = models.CharField(max_length=200)
    message = models.CharField(max_length=500)
    playbooks = models.JSONField(default=list, help_text="Playbook files at this commit.")

    class Meta:
        ordering = ["-committed_at"]
        constraints = [models.UniqueConstraint(fields=["source", "sha"], name="uniq_source_commit")]

    def __str__(self) -> str:
        return f"{self.sha[:10]} {self.message[:60]}"


class PlaybookVersion(models.Model):
    """One playbook file at one commit, pinned by the SHA-256 of what will run."""

    source = models.ForeignKey(PlaybookSource, on_delete=models.PROTECT, related_name="versions")
    commit = models.CharField(max_length=40)
    path = models.CharField(
        max_length=300, help_text="Playbook file, relative to the repository root."
    )
    content_hash = models.CharField(
        max_length=64,
        editable=False,
        help_text="SHA-256 of the project tree at the commit (submodules and the roles and "
        "collections its requirements install included).",
    )
    requirements = models.JSONField(
        default=dict,
        blank=True,
        editable=False,
        help_text="The roles and collections of its requirements files, each pinned at sync "
        "(git commit, archive SHA-256), and the hash of what they installed.",
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "commit", "path"], name="uniq_playbook_version"
            )
        ]

    def __str__(self) -> str:
        state = "approved" if self.is_approved else "not approved"
        return f"{self.source} {self.path} @ {self.commit[:10]} ({state})"

    @property
    def is_approved(self) -> bool:
        return self.approved_at is not None


class Service(models.Model):
    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    team = models.ForeignKey(
        "accounts.Team",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="services",
        help_text="The team that owns the service: its members see it on every environment.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Action(models.Model):
    """A button on a service: an approved playbook version with a form."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="actions")
    slug = models.SlugField(max_length=100)
    label = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=16, choices=ActionKind.choices, default=ActionKind.OTHER)
    playbook_version = models.ForeignKey(
        PlaybookVersion, on_delete=models.PROTECT, related_name="actions"
    )
    environments = models.ManyToManyField("environments.Environment", related_name="actions")
    timeout = models.PositiveIntegerField(
        default=1800,
        validators=[MinValueValidator(1)],
        help_text="Seconds before the run is timed out.",
    )
    form = models.JSONField(
        default=list,
        blank=True,
        help_text=(
            'A list of fields: {"name", "label", "type" (string, integer, boolean, choice, '
            'multi-choice, secret), "required", "default", "choices", "pattern", "min", "max", '
            '"help"}.'
        ),
    )
    version_field = models.CharField(
        max_length=100,
        blank=True,
        help_text="Name of the form field that holds the version deployed.",
    )
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["service", "position", "label"]
        constraints = [models.UniqueConstraint(fields=["service", "slug"], name="uniq_action_slug")]

    def __str__(self) -> str:
        return f"{self.service} / {self.label}"

    def clean(self):
        errors = {}
        if form_errors := form_definition_errors(self.form):
            errors["form"] = form_errors
        elif self.version_field and self.version_field not in {f["name"] for f in self.form}:
            errors["version_field"] = f"No field named {self.version_field!r} in the form."
        if self.playbook_version_id and not self.playbook_version.is_approved:
            errors["playbook_version"] = "Only an approved playbook version can run."
        if errors:
            raise ValidationError(errors)
