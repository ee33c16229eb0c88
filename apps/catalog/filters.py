"""The filters of the lists of services (the catalog, what runs where) and of runs: a
plain GET form, so a filtered page is a link one can keep."""

from django import forms

from apps.accounts.models import Team

SEARCH_MAX_CHARS = 100


class ServiceFilterForm(forms.Form):
    """Search by name and description, a team, an environment, and "mine"."""

    q = forms.CharField(
        label="Search",
        required=False,
        max_length=SEARCH_MAX_CHARS,
        strip=True,
        error_messages={"max_length": f"Search for at most {SEARCH_MAX_CHARS} characters."},
    )
    team = forms.ModelChoiceField(
        label="Team",
        queryset=Team.objects.none(),
        to_field_name="slug",
        required=False,
        empty_label="any",
        error_messages={"invalid_choice": "There is no such team."},
    )
    environment = forms.ModelChoiceField(
        label="Environment",
        queryset=None,
        to_field_name="slug",
        required=False,
        empty_label="any",
        error_messages={"invalid_choice": "There is no such environment, or you may not see it."},
    )
    mine = forms.BooleanField(label="Only my services", required=False)

    def __init__(self, data=None, *, environments=None):
        """`environments`: those the user may pick (the environments app sits above this
        one); None leaves the environment filter out."""
        super().__init__(data)
        self.fields["team"].queryset = Team.objects.order_by("name")
        if environments is not None:
            self.fields["environment"].queryset = environments
        else:
            del self.fields["environment"]

    def filters(self) -> dict:
        """The valid filters (those with an error are left out, and say so on the form)."""
        data = getattr(self, "cleaned_data", {})
        return {
            "text": data.get("q", ""),
            "team": data.get("team"),
            "environment": data.get("environment"),
            "mine": bool(data.get("mine")),
        }

    @property
    def active(self) -> bool:
        """Does any filter narrow the list?"""
        f = self.filters()
        return bool(f["text"] or f["team"] or f["environment"] or f["mine"])
