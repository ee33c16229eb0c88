from django import forms

from apps.environments.constants import REASON_MAX_CHARS

# How long a lock lasts, in minutes: the page offers these; the API takes any up to 30 days.
LOCK_DURATIONS = [
    (30, "30 minutes"),
    (60, "1 hour"),
    (120, "2 hours"),
    (240, "4 hours"),
    (480, "8 hours"),
    (24 * 60, "1 day"),
    (3 * 24 * 60, "3 days"),
    (7 * 24 * 60, "1 week"),
    (14 * 24 * 60, "2 weeks"),
    (30 * 24 * 60, "30 days"),
]


class LockForm(forms.Form):
    """What to lock, for how long and why. Who may lock what is the service's question."""

    service = forms.ChoiceField(label="What", required=False)
    minutes = forms.TypedChoiceField(label="For", choices=LOCK_DURATIONS, coerce=int, initial=60)
    reason = forms.CharField(
        label="Why",
        max_length=REASON_MAX_CHARS,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Everyone who is stopped reads it, with your name and the expiry.",
        error_messages={"required": "Say why: the reason is shown to everyone who is stopped."},
    )

    def __init__(self, *args, environment, services, whole: bool, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [("", f"All of {environment.name} (every service)")] if whole else []
        choices += [(service.slug, f"{service.name} on {environment.name}") for service in services]
        self.fields["service"].choices = choices
        self.fields["service"].required = not whole
