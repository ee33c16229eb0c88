from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from apps.environments.freezes import validate_time_zone
from apps.schedules.constants import (
    EXPRESSION_MAX_CHARS,
    NAME_MAX_CHARS,
    Outcome,
    Recurrence,
    WhenBusy,
)


class Schedule(models.Model):
    """An action of a service run on an environment by the clock, with the parameters of
    its form, as the person who scheduled it (`owner`): their rights are checked at each
    firing, as if they pressed the button then."""

    name = models.CharField(max_length=NAME_MAX_CHARS, help_text='e.g. "Nightly smoke test".')
    service = models.ForeignKey("catalog.Service", on_delete=models.CASCADE, related_name="+")
    action = models.ForeignKey("catalog.Action", on_delete=models.CASCADE, related_name="+")
    environment = models.ForeignKey(
        "environments.Environment", on_delete=models.CASCADE, related_name="+"
    )
    parameters = models.JSONField(
        default=dict, blank=True, help_text="The action's form, as typed values; secrets masked."
    )
    secret_parameters = models.TextField(blank=True, help_text="Secret values, encrypted.")
    kind = models.CharField(max_length=8, choices=Recurrence.choices, default=Recurrence.CRON)
    expression = models.CharField(
        max_length=EXPRESSION_MAX_CHARS,
        help_text="A cron expression (30 2 * * *) or an RRULE (FREQ=DAILY;BYHOUR=2;BYMINUTE=30).",
    )
    time_zone = models.CharField(
        max_length=64,
        validators=[validate_time_zone],
        help_text="The time zone its times are read in, e.g. Europe/Berlin.",
    )
    when_busy = models.CharField(
        max_length=8,
        choices=WhenBusy.choices,
        default=WhenBusy.SKIP,
        help_text="While the run of its previous firing still goes (or another holds the "
        "deploy lock): skip the firing, or wait in the deploy queue.",
    )
    paused = models.BooleanField(default=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="schedules",
        help_text="Who scheduled it (or last changed it): its runs run as them.",
    )
    owner_name = models.CharField(max_length=150)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    next_due_at = models.DateTimeField(
        null=True, blank=True, db_index=True, help_text="Empty: paused, or it fires no more."
    )

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["paused", "next_due_at"], name="schedule_due")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("schedules:detail", args=[self.pk])


class Firing(models.Model):
    """One time a schedule was due, and what became of it: a run launched, or why not."""

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="firings")
    due_at = models.DateTimeField()
    fired_at = models.DateTimeField(default=timezone.now)
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    reason = models.TextField(blank=True)
    # The run page reaches its schedule through `run.firing`.
    run = models.OneToOneField(
        "runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="firing"
    )

    class Meta:
        ordering = ["-due_at", "-id"]
        constraints = [
            # One firing per due time: two firing passes at once never both fire it.
            models.UniqueConstraint(fields=["schedule", "due_at"], name="uniq_firing_due")
        ]

    def __str__(self) -> str:
        return f"{self.schedule} at {self.due_at:%Y-%m-%d %H:%M} UTC: {self.outcome}"
