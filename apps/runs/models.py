from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from apps.catalog.constants import ActionKind
from apps.runs.constants import ACTIVE_STATUSES, FINAL_STATUSES, VERSION_MAX_CHARS, RunStatus

# The longest provenance a launch may carry (the columns' lengths).
SOURCE_COMMIT_MAX = 64  # a SHA-256 object name; SHA-1 ones are 40
SOURCE_REF_MAX = 255
SOURCE_URL_MAX = 500

FOLLOW_UP_WAIT = timedelta(minutes=15)


class Run(models.Model):
    """One press of a button. Everything it runs with is copied onto it at launch,
    so later edits of the action or environment do not change it."""

    service = models.ForeignKey("catalog.Service", on_delete=models.PROTECT, related_name="runs")
    action = models.ForeignKey(
        "catalog.Action", null=True, on_delete=models.SET_NULL, related_name="runs"
    )
    environment = models.ForeignKey(
        "environments.Environment", on_delete=models.PROTECT, related_name="runs"
    )
    action_slug = models.CharField(max_length=100)
    action_label = models.CharField(max_length=100)
    action_kind = models.CharField(max_length=16)
    playbook_version = models.ForeignKey(
        "catalog.PlaybookVersion", on_delete=models.PROTECT, related_name="runs"
    )
    playbook_commit = models.CharField(max_length=40)
    playbook_path = models.CharField(max_length=300)
    content_hash = models.CharField(max_length=64)
    form = models.JSONField(default=list)
    inventory = models.JSONField(default=dict)
    inventory_path = models.CharField(
        max_length=300,
        blank=True,
        help_text="The inventory's path in the exported playbook tree (else the JSON above).",
    )
    timeout = models.PositiveIntegerField()
    queue = models.CharField(max_length=100)

    parameters = models.JSONField(default=dict, help_text="Secret values masked.")
    secret_parameters = models.TextField(
        blank=True, help_text="Encrypted; erased when the run ends."
    )
    credentials = models.JSONField(
        default=list, blank=True, help_text="Names and kinds of the credentials it got."
    )
    secret_credentials = models.TextField(
        blank=True, help_text="Their values, encrypted; erased when the run ends."
    )
    version = models.CharField(max_length=VERSION_MAX_CHARS, blank=True)
    check_mode = models.BooleanField(default=False)
    rerun_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL)
    rollback_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="rolled_back_by",
        help_text="The run whose change this one undoes.",
    )
    promoted_from = models.ForeignKey(
        "environments.Environment",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Where the version was verified before it was promoted here.",
    )
    reason = models.TextField(blank=True, help_text="Why, as given for a rollback.")
    emergency = models.BooleanField(
        default=False, help_text="Launched during a freeze window, by an emergency override."
    )
    emergency_reason = models.TextField(blank=True, help_text="Why the freeze was overridden.")
    auto_verify = models.BooleanField(
        default=False, help_text="Once successful, run the service's verify action by itself."
    )
    triggered_by = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="triggered",
        help_text="Launched by the system when this run succeeded (verification, promotion).",
    )
    follow_up_error = models.TextField(
        blank=True, help_text="Why an automatic follow-up of this run was not launched."
    )
    follow_up_done = models.BooleanField(
        default=False, help_text="What it starts by itself once it ended has been launched."
    )
    # Provenance: the build a launch says it deploys (apps/runs/provenance.py). Promote
    # and Roll back carry that of the run they repeat; lead time is measured from it.
    source_commit = models.CharField(
        max_length=SOURCE_COMMIT_MAX, blank=True, db_index=True, help_text="Commit SHA, hex."
    )
    source_committed_at = models.DateTimeField(null=True, blank=True)
    source_ref = models.CharField(max_length=SOURCE_REF_MAX, blank=True)
    source_repository = models.CharField(max_length=SOURCE_URL_MAX, blank=True)
    source_pipeline_url = models.CharField(max_length=SOURCE_URL_MAX, blank=True)
    source_job_url = models.CharField(max_length=SOURCE_URL_MAX, blank=True)
    api_token = models.ForeignKey(
        "accounts.ApiToken",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The API token it was launched with: its limits hold for its follow-ups too.",
    )

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="runs"
    )
    requested_by_name = models.CharField(max_length=150)
    status = models.CharField(
        max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    queued_at = models.DateTimeField(
        null=True, blank=True, help_text="When it was sent to a worker (after waiting, if it did)."
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    rc = models.IntegerField(null=True, blank=True)
    host_summary = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, help_text="Why the run ended as it did, when not obvious.")
    worker = models.CharField(max_length=200, blank=True)
    worker_pid = models.IntegerField(null=True, blank=True)
    marker = models.CharField(
        max_length=64,
        blank=True,
        help_text="Carried in the environment of each of its processes, to find them all.",
    )
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    canceled_by_name = models.CharField(max_length=150, blank=True)
    wait_reason = models.CharField(
        max_length=500,
        blank=True,
        help_text="While it waits in the deploy queue: what it waits for.",
    )
    line_count = models.PositiveIntegerField(default=0)
    event_count = models.PositiveIntegerField(default=0)
    # How its events were stored (apps/runs/events.py): the batches, and the seconds they
    # took in all. Kept on the run, as the worker that stored them may be on another host;
    # /metrics adds them up.
    ingest_batches = models.PositiveIntegerField(default=0)
    ingest_seconds = models.FloatField(default=0)
    # Tasks started, the current one, hosts and whether they failed: kept up to date as
    # events are stored (apps/runs/progress.py); null for a run stored before it was kept.
    progress = models.JSONField(null=True, blank=True, default=dict)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["service", "environment", "status"]),
            # A version's runs anywhere (its first deploy, for lead time; was it verified).
            models.Index(fields=["service", "version"], name="run_service_version"),
            # What came before or after a run there (recovery, rework, what runs now).
            models.Index(
                fields=["service", "environment", "finished_at"], name="run_service_env_finished"
            ),
            # The runs still going or ended lately (/metrics: apps/insights/metrics.py).
            models.Index(fields=["finished_at"], name="run_finished"),
            # The last run (not a dry run) of each service on each environment (what runs
            # where): without it PostgreSQL walks the primary key back past every other
            # pair's runs, ~0.5 ms a cell at 100,000 runs.
            models.Index(
                fields=["service", "environment", "-id"],
                condition=Q(check_mode=False),
                name="run_service_env_latest",
            ),
        ]
        constraints = [
            # The deploy lock: one queued or running run per service and environment.
            # Dry runs change nothing and never hold it.
            models.UniqueConstraint(
                fields=["service", "environment"],
                condition=Q(status__in=[RunStatus.QUEUED, RunStatus.RUNNING], check_mode=False),
                name="one_active_run_per_service_environment",
            )
        ]

    def __str__(self) -> str:
        return f"Run #{self.pk}: {self.title}"

    # Set by run_launch on a run it answered again for an idempotency key it had seen.
    replayed = False

    def get_absolute_url(self) -> str:
        return reverse("runs:detail", args=[self.pk])

    @property
    def is_rollback(self) -> bool:
        return self.rollback_of_id is not None or self.action_kind == "rollback"

    @property
    def is_promotion(self) -> bool:
        return self.promoted_from_id is not None

    @property
    def title(self) -> str:
        """What the run does, in the words its page, the lists and the histories use:
        "Roll back hello-web on Test to 2.0.0", "Promote hello-web 2.1.0 from Test to
        QA", "Deploy hello-web on Test" (templates show the matching badge with the
        `run_kind` tag of run_tags)."""
        service, environment = self.service.name, self.environment.name
        if self.is_rollback:
            return f"Roll back {service} on {environment}" + (
                f" to {self.version}" if self.version else ""
            )
        if self.is_promotion:
            version = f" {self.version}" if self.version else ""
            return f"Promote {service}{version} from {self.promoted_from.name} to {environment}"
        return f"{self.action_label} {service} on {environment}"

    @property
    def source(self) -> dict | None:
        """The build it deploys, as a launch gave it (or the run it repeats had it)."""
        if not self.source_commit:
            return None
        return {
            "commit": self.source_commit,
            "committed_at": self.source_committed_at,
            "ref": self.source_ref,
            "repository": self.source_repository,
            "pipeline_url": self.source_pipeline_url,
            "job_url": self.source_job_url,
        }

    @property
    def awaits_follow_ups(self) -> bool:
        """Whether its page should keep asking for what it starts by itself: it asked for
        a verification, which has not ended (or not begun) yet."""
        if not self.auto_verify or self.follow_up_error:
            return False
        if not self.is_final:
            return True
        if self.status != RunStatus.SUCCESSFUL:
            return False
        children = list(self.triggered.all())
        if not children:
            # A reaper launches forgotten follow-ups within minutes; the page stops asking
            # after a quarter of an hour.
            recent = self.finished_at and timezone.now() - self.finished_at < FOLLOW_UP_WAIT
            return not self.follow_up_done and bool(recent)
        return any(not child.is_final for child in children)

    @property
    def may_have_follow_ups(self) -> bool:
        """Whether runs may have followed it up (services/follow_ups.py): the system
        launches them only after a run that succeeded, and after a verification that
        failed or timed out (its automatic rollback); never after any other run, nor
        before it ended. Where it is False, `triggered` is empty without asking."""
        if self.status == RunStatus.SUCCESSFUL:
            return True
        return self.action_kind == ActionKind.VERIFY and self.status in (
            RunStatus.FAILED,
            RunStatus.TIMED_OUT,
        )

    @property
    def is_automatic(self) -> bool:
        return self.triggered_by_id is not None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def is_waiting(self) -> bool:
        return self.status == RunStatus.WAITING

    @property
    def holds_lock(self) -> bool:
        return not self.check_mode and self.status in ACTIVE_STATUSES

    @property
    def duration(self):
        if not self.started_at:
            return None
        return (self.finished_at or timezone.now()) - self.started_at


class RunEvent(models.Model):
    """One ansible-runner event, with the stdout lines it printed."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    counter = models.PositiveIntegerField()
    event = models.CharField(max_length=64)
    created = models.DateTimeField(null=True)
    host = models.CharField(max_length=200, blank=True)
    play = models.CharField(max_length=500, blank=True)
    task = models.CharField(max_length=500, blank=True)
    start_line = models.PositiveIntegerField(default=0)
    end_line = models.PositiveIntegerField(default=0)
    stdout = models.TextField(blank=True)
    failed = models.BooleanField(default=False)
    changed = models.BooleanField(default=False)
    data = models.JSONField(default=dict, blank=True)
    # Its stdout holds a terminal string (OSC, DCS, ...): a search reads it whatever it
    # looks for, as the text shown has that string removed (apps/runs/search.py).
    terminal_string = models.BooleanField(default=False)

    class Meta:
        ordering = ["run", "counter"]
        constraints = [
            models.UniqueConstraint(fields=["run", "counter"], name="uniq_run_event_counter")
        ]
        indexes = [
            models.Index(fields=["run", "end_line"]),
            # Small: only the few events they cover are in them.
            models.Index(
                fields=["run", "counter"],
                condition=Q(terminal_string=True),
                name="runevent_terminal_string",
            ),
            models.Index(
                fields=["run", "counter"],
                condition=Q(event="runner_on_file_diff"),
                name="runevent_file_diff",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.run_id}#{self.counter} {self.event}"


class LaunchKey(models.Model):
    """The Idempotency-Key a launch came with, hashed: the same key from the same user,
    until it expires, answers with the run it created instead of launching another.
    Written in the transaction that creates the run; the unique (user, key_hash) makes
    two identical launches at once create one run."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key_hash = models.CharField(max_length=64, help_text="SHA-256 of the key.")
    fingerprint = models.JSONField(
        default=dict, help_text="Keyed hashes of each field of the request it came with."
    )
    run = models.ForeignKey(Run, null=True, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key_hash"], name="one_launch_per_user_key")
        ]

    def __str__(self) -> str:
        return f"{self.key_hash[:12]}… of user {self.user_id}: run #{self.run_id}"
