"""A team's own notifications: its members add and remove channels (a webhook, Slack,
Teams or e-mail addresses) that hear of the team's services only, with the events and
environments they choose. Every change is audited; a webhook's URL is write-only."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from apps.accounts.models import Team
from apps.audit.constants import Via
from apps.audit.services import audit_record
from apps.environments.models import Environment
from apps.notifications.admin import ChannelForm
from apps.notifications.constants import ChannelKind, Event
from apps.notifications.models import Channel, Rule
from apps.notifications.services import channel_secrets_set
from portal.crypto import encrypt_text


class TeamChannelForm(ChannelForm):
    events = forms.MultipleChoiceField(choices=Event.choices, widget=forms.CheckboxSelectMultiple)
    environments = forms.ModelMultipleChoiceField(
        queryset=Environment.objects.order_by("order"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None chosen: every environment.",
    )

    class Meta(ChannelForm.Meta):
        fields = ("name", "kind", "emails")


def _team_of(request, slug: str) -> Team:
    team = get_object_or_404(Team, slug=slug)
    if not (request.user.is_superuser or team.memberships.filter(user=request.user).exists()):
        raise PermissionDenied(f"Only members of {team.name} set up its notifications.")
    return team


def _audit(request, verb: str, channel: Channel, team: Team, details: dict) -> None:
    audit_record(actor=request.user, via=Via.WEB, verb=verb, obj=channel, request=request,
                 details={"team": team.slug, **details})  # fmt: skip


@login_required
def team_channels(request, team_slug: str):
    team = _team_of(request, team_slug)
    form = TeamChannelForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        values = form.cleaned_data
        with transaction.atomic():
            channel = form.save(commit=False)
            channel.team = team
            if values.get("signing_secret"):
                channel.signing_secret_encrypted = encrypt_text(values["signing_secret"])
            made_secret = channel.kind == ChannelKind.WEBHOOK and not values.get("signing_secret")
            channel_secrets_set(channel=channel, url=values.get("url") or None)
            channel.save()
            rule = Rule.objects.create(name=channel.name, channel=channel, events=values["events"])
            rule.environments.set(values["environments"])
            _audit(request, "channel.create", channel, team, {
                "kind": channel.kind, "events": values["events"],
                "environments": [e.slug for e in values["environments"]],
            })  # fmt: skip
        if made_secret:
            messages.warning(request, f"The signing secret of {channel.name} (shown once; give "
                                      f"it to the receiver): {channel.signing_secret}")  # fmt: skip
        else:
            messages.success(request, f"{channel.name} added.")
        return redirect("notifications:team", team_slug=team.slug)
    channels = Channel.objects.filter(team=team).prefetch_related("rules__environments")
    return render(
        request,
        "notifications/team.html",
        {"team": team, "channels": channels, "form": form},
        status=400 if request.method == "POST" else 200,
    )


@login_required
@require_POST
def team_channel_delete(request, team_slug: str, channel_id: int):
    team = _team_of(request, team_slug)
    channel = get_object_or_404(Channel, pk=channel_id, team=team)
    _audit(request, "channel.delete", channel, team, {"kind": channel.kind})
    channel.delete()
    messages.success(request, f"{channel.name} removed.")
    return redirect("notifications:team", team_slug=team.slug)
