"""What the insights page aggregates: one row per change (a successful deploy or rollback)
of a service on an environment, with the facts the four keys need already worked out.

Worked out from the runs (apps/insights/changes.py) when a change ends, when a
verification fails, when an incident is opened against a deploy, and by
`manage.py rebuild_insights`; the page then only counts and ranks rows of one index
range instead of joining each deploy against the history around it."""

from django.db import models


class ChangeKind(models.TextChoices):
    DEPLOY = "deploy", "Deploy"
    ROLLBACK = "rollback", "Rollback"


class Change(models.Model):
    run = models.OneToOneField(
        "runs.Run", on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    service = models.ForeignKey(
        "catalog.Service", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    environment = models.ForeignKey(
        "environments.Environment", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    finished_at = models.DateTimeField()
    kind = models.CharField(max_length=16, choices=ChangeKind.choices)
    # A deploy that needed remediation: rolled back, its verification failed, an incident.
    failed = models.BooleanField(default=False)
    # From the commit (or the version's first deploy anywhere) to this deploy; None for a
    # rollback or a deploy without a version.
    lead = models.DurationField(null=True)
    from_commit = models.BooleanField(default=False)
    # A failed deploy: to the next change there; None while not recovered.
    recovery = models.DurationField(null=True)
    # A deploy whose change just before was a failed deploy (unplanned work).
    recovers = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(fields=["environment", "finished_at"], name="change_env_time"),
            models.Index(
                fields=["service", "environment", "finished_at"], name="change_service_time"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} run {self.run_id}"
