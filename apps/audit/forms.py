from datetime import UTC, datetime, time, timedelta

from django import forms
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from apps.audit.constants import Outcome, Via

# What the pages and the API offer in their verb list (any other verb may be typed).
KNOWN_VERBS = (
    "run.*", "run.requested", "run.refused", "run.started", "run.finished", "run.canceled",
    "access.refused",
    "schedule.*", "source.*", "playbook_version.*", "action.*", "service.*", "environment.*",
    "team.*", "membership.*", "grant.*", "token.*", "user.*",
    "auth.*", "auth.login", "auth.logout", "auth.login_failed", "mfa.*",
    "audit.*", "audit.search", "audit.view", "audit.export", "audit.verify",
)  # fmt: skip


# Far enough for any audit row; the calendar's own ends (years 1 and 9999) overflow
# once a day is added or a time zone applied.
MIN_YEAR, MAX_YEAR = 1900, 9998


class MomentField(forms.Field):
    """A date (YYYY-MM-DD) or a date and time (YYYY-MM-DDTHH:MM[:SS][+zone]).

    A date alone means the start of that day, or with `end_of_day` its end, in the
    portal's time zone.
    """

    def __init__(self, *, end_of_day: bool = False, **kwargs):
        self.end_of_day = end_of_day
        super().__init__(required=False, **kwargs)

    def to_python(self, value):
        value = str(value or "").strip()
        if not value:
            return None
        if len(value) > 40:
            raise forms.ValidationError("Enter a date or a date and time, not a text.")
        try:
            # A date first: Python's own ISO parser also reads "2026-01-31" as a datetime.
            day = parse_date(value)
            moment = None if day else parse_datetime(value)
        except ValueError:
            moment = day = None
        if moment is None and day is None:
            raise forms.ValidationError(
                "Enter a date (2026-01-31) or a date and time (2026-01-31T14:30)."
            )
        if not MIN_YEAR <= (day or moment).year <= MAX_YEAR:
            raise forms.ValidationError(f"Enter a year from {MIN_YEAR} to {MAX_YEAR}.")
        try:
            if day is not None:
                moment = datetime.combine(day, time.min)
                if self.end_of_day:
                    moment += timedelta(days=1)
            if timezone.is_naive(moment):
                moment = timezone.make_aware(moment)
            # Converted here, so a moment at the edge of the calendar fails now, not in a query.
            moment.astimezone(UTC)
        except OverflowError as exc:
            raise forms.ValidationError(f"Enter a date between {MIN_YEAR} and {MAX_YEAR}.") from exc
        return moment


class AuditFilterForm(forms.Form):
    """What the review pages, the exports and the API filter by (all optional)."""

    actor = forms.CharField(max_length=150, required=False, help_text="Username, exactly.")
    verb = forms.CharField(
        max_length=64, required=False, help_text='Exactly, or a family such as "run.*".'
    )
    service = forms.CharField(max_length=100, required=False, help_text="Service slug.")
    environment = forms.CharField(max_length=100, required=False, help_text="Environment slug.")
    object_type = forms.CharField(max_length=64, required=False, help_text='e.g. "runs.run".')
    object_id = forms.CharField(max_length=64, required=False)
    outcome = forms.ChoiceField(choices=[("", "any"), *Outcome.choices], required=False)
    via = forms.ChoiceField(choices=[("", "any"), *Via.choices], required=False)
    since = MomentField(help_text="From this date or time on.")
    until = MomentField(end_of_day=True, help_text="Up to this date (the whole day) or time.")
    q = forms.CharField(
        max_length=200,
        required=False,
        label="Text",
        help_text="Found in names, objects and details.",
    )

    FILTERS = (
        "actor", "verb", "service", "environment", "object_type", "object_id", "outcome",
        "via", "since", "until", "q",
    )  # fmt: skip

    def clean_verb(self):
        verb = self.cleaned_data["verb"].strip()
        if "*" in verb and (not verb.endswith(".*") or verb.count("*") > 1 or len(verb) < 3):
            raise forms.ValidationError('Only a whole family may be wildcarded: "run.*".')
        return verb

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since >= until:
            self.add_error("until", "Must be after the start of the range.")
        return cleaned

    def filters(self) -> dict:
        """The filters given, cleaned (call after is_valid)."""
        return {
            name: value
            for name in self.FILTERS
            if (value := self.cleaned_data.get(name)) not in (None, "")
        }

    def raw(self) -> dict:
        """The filters as typed, for links and for the audit row of this search."""
        return {name: self.data[name] for name in self.FILTERS if self.data.get(name)}


class CursorForm(forms.Form):
    """Keyset pagination: rows older than `before`, or newer than `after` (sequence numbers)."""

    # Sequence numbers are PostgreSQL bigints: past the largest, a clear error, not a
    # page the database cannot look up.
    before = forms.IntegerField(min_value=1, max_value=2**63 - 1, required=False)
    after = forms.IntegerField(min_value=0, max_value=2**63 - 1, required=False)
    limit = forms.IntegerField(min_value=1, max_value=500, required=False)

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("before") is not None and cleaned.get("after") is not None:
            raise forms.ValidationError("Give before or after, not both.")
        return cleaned
