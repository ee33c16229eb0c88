"""An incident: a problem reported against a deploy on an environment, by a person
(*Report a problem*) or by monitoring (an alert); resolved by a later successful deploy
or rollback there, by hand with a note, or by the alert's resolution."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class IncidentSource(models.TextChoices):
    REPORTED = "reported", "Reported by a person"
    ALERT = "alert", "Alert from monitoring"


class Incident(models.Model):
    service = models.ForeignKey("catalog.Service", on_delete=models.CASCADE, related_name="+")
    environment = models.ForeignKey(
        "environments.Environment", on_delete=models.CASCADE, related_name="+"
    )
    run = models.ForeignKey(
        "runs.Run",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="incidents",
        help_text="The deploy (or rollback) it is against: what ran there when it opened.",
    )
    version = models.CharField(max_length=200, blank=True)
    title = models.CharField(max_length=500)
    link = models.URLField(max_length=500, blank=True)
    source = models.CharField(max_length=16, choices=IncidentSource.choices)
    alert_key = models.CharField(
        max_length=200, blank=True, help_text="The alert's fingerprint, to resolve it."
    )
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    opened_by_name = models.CharField(max_length=150)
    opened_at = models.DateTimeField(default=timezone.now, db_index=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by_name = models.CharField(max_length=150, blank=True)
    resolved_by_run = models.ForeignKey(
        "runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolution = models.TextField(blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        indexes = [models.Index(fields=["service", "environment", "resolved_at"])]
        constraints = [
            # One open incident per firing alert.
            models.UniqueConstraint(
                fields=["alert_key"],
                condition=Q(resolved_at__isnull=True) & ~Q(alert_key=""),
                name="one_open_incident_per_alert",
            )
        ]

    def __str__(self) -> str:
        return f"Incident #{self.pk}: {self.title}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None
