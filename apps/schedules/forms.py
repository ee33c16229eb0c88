"""The schedule's own fields on its page (the action's form is drawn beside them)."""

from django import forms
from django.conf import settings

from apps.schedules.constants import EXPRESSION_MAX_CHARS, NAME_MAX_CHARS, Recurrence, WhenBusy

# The action's form fields are named [a-z_][a-z0-9_]*: with this prefix ("schedule-name")
# the schedule's own fields never collide with them.
PREFIX = "schedule"


class ScheduleForm(forms.Form):
    name = forms.CharField(max_length=NAME_MAX_CHARS, help_text='e.g. "Nightly smoke test".')
    kind = forms.ChoiceField(
        label="Recurrence", choices=Recurrence.choices, initial=Recurrence.CRON
    )
    expression = forms.CharField(
        label="When",
        max_length=EXPRESSION_MAX_CHARS,
        help_text="Cron: minute hour day-of-month month day-of-week, e.g. 30 2 * * 1-5. "
        "RRULE: e.g. FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=2;BYMINUTE=30. Read in the time zone below.",
    )
    time_zone = forms.CharField(
        label="Time zone",
        max_length=64,
        initial=settings.TIME_ZONE,
        help_text="An IANA time zone name, e.g. Europe/Berlin or UTC.",
    )
    when_busy = forms.ChoiceField(
        label="While its previous run still goes",
        choices=WhenBusy.choices,
        initial=WhenBusy.SKIP,
        widget=forms.RadioSelect,
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, prefix=PREFIX, **kwargs)
