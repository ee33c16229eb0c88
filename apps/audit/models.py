from django.db import models
from django.utils import timezone

from apps.audit.chain import GENESIS
from apps.audit.constants import READ_LOG_CODENAME, Outcome, Via
from apps.audit.fields import CanonicalJSONField


class AuditEvent(models.Model):
    """One row of the append-only audit log; its id is its sequence number.

    The actor is copied (id and name), not referenced, so the row outlives the
    user. Each row hashes its own content and the previous row's hash (see
    apps/audit/chain.py). The database refuses UPDATE, DELETE, REPLACE and
    TRUNCATE on this table (triggers: apps/audit/triggers/).
    """

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_name = models.CharField(max_length=150, blank=True)
    via = models.CharField(max_length=8, choices=Via.choices)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    verb = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    service = models.CharField(max_length=100, blank=True)
    environment = models.CharField(max_length=100, blank=True)
    details = CanonicalJSONField(default=dict, blank=True)
    outcome = models.CharField(max_length=8, choices=Outcome.choices, default=Outcome.SUCCESS)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-id"]
        permissions = [(READ_LOG_CODENAME, "Can read the audit log")]
        # Each filter of the review pages walks its own index newest first
        # (keyset pagination on id), so a deep page costs what the first does.
        indexes = [
            models.Index(fields=["object_type", "object_id", "id"], name="audit_object_idx"),
            models.Index(fields=["verb", "id"], name="audit_verb_idx"),
            models.Index(fields=["actor_name", "id"], name="audit_actor_idx"),
            models.Index(fields=["service", "id"], name="audit_service_idx"),
            models.Index(fields=["environment", "id"], name="audit_environment_idx"),
            models.Index(fields=["outcome", "id"], name="audit_outcome_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.verb} {self.object_repr}"

    @property
    def run_id(self) -> int | None:
        """The run this row is about, when it is about one."""
        if self.object_type == "runs.run" and self.object_id.isdigit():
            return int(self.object_id)
        return None


class AuditHead(models.Model):
    """The chain's head: one row, locked to serialize appends, so the chain never forks
    and sequence numbers have no gaps. The database lets it move only forward, onto the
    newest row (triggers: apps/audit/triggers/)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_id = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default=GENESIS)

    def __str__(self) -> str:
        return f"#{self.last_id} {self.last_hash}"


class AuditCheckpoint(models.Model):
    """A signed statement "the log had `sequence` rows, the last with `hash`, at `signed_at`".

    The copy that counts is the one published outside the database (file, webhook);
    this row is what the portal shows. The database refuses changing or removing it.
    """

    sequence = models.BigIntegerField()
    hash = models.CharField(max_length=64)
    signed_at = models.DateTimeField()
    key_id = models.CharField(max_length=16)
    signature = models.CharField(max_length=100)
    published_to = models.JSONField(default=list, blank=True)
    publish_errors = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"checkpoint #{self.sequence} {self.hash[:12]} {self.signed_at:%Y-%m-%d %H:%M}"


class AuditVerification(models.Model):
    """The result of one walk of the chain (manage.py verify_audit, or the periodic task)."""

    started_at = models.DateTimeField(default=timezone.now)
    duration = models.FloatField(default=0)
    ok = models.BooleanField()
    rows_checked = models.BigIntegerField(default=0)
    last_sequence = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, blank=True)
    first_bad_sequence = models.BigIntegerField(null=True, blank=True)
    problem = models.TextField(blank=True)
    checkpoint_sequence = models.BigIntegerField(null=True, blank=True)
    checkpoints_checked = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{'intact' if self.ok else 'BROKEN'} up to #{self.last_sequence}"
