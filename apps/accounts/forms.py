import datetime

from django import forms
from django.utils import timezone

from apps.accounts.constants import TokenScope
from apps.accounts.selectors import environment_list

DEFAULT_TOKEN_DAYS = 90


def _default_expiry() -> datetime.date:
    return timezone.localdate() + datetime.timedelta(days=DEFAULT_TOKEN_DAYS)


class TokenForm(forms.Form):
    """A new API token: what it is for, what it may do, where, and until when."""

    name = forms.CharField(
        max_length=100, help_text="What uses it, e.g. the CI pipeline of hello-web."
    )
    scopes = forms.MultipleChoiceField(
        choices=TokenScope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[TokenScope.READ],
        help_text="Read: look at the catalog and runs. Run: launch and cancel runs.",
    )
    environments = forms.ModelMultipleChoiceField(
        queryset=None,  # set by __init__: the environments the user may use
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text=(
            "None ticked: every environment you may use, except those that require "
            "two-factor authentication, which a token must name to run there."
        ),
    )
    expires_on = forms.DateField(
        required=False,
        initial=_default_expiry,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Empty: never expires.",
    )

    def __init__(self, *args, environments=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["environments"].queryset = (
            environments if environments is not None else environment_list()
        )

    def clean_expires_on(self):
        day = self.cleaned_data.get("expires_on")
        if day is not None and day <= timezone.localdate():
            raise forms.ValidationError("Choose a day after today.")
        return day

    @property
    def expires_at(self) -> datetime.datetime | None:
        day = self.cleaned_data.get("expires_on")
        if day is None:
            return None
        # The token lasts until the end of that day, where the portal is.
        end = datetime.datetime.combine(day, datetime.time.max)
        return timezone.make_aware(end)
