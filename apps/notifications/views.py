"""A user's own subscription: hear by e-mail how your runs end."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from apps.audit.constants import Via
from apps.audit.services import audit_record
from apps.notifications.constants import OWN_RUN_EVENTS, Event
from apps.notifications.models import Subscription


class SubscriptionForm(forms.Form):
    active = forms.BooleanField(required=False, label="E-mail me when my runs end")
    events = forms.MultipleChoiceField(
        choices=[(e, Event(e).label) for e in [*OWN_RUN_EVENTS, Event.RUN_STARTED.value]],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        label="Which endings",
    )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("active") and not cleaned.get("events"):
            self.add_error("events", "Choose at least one, or turn the e-mails off.")
        return cleaned


@login_required
def subscription(request):
    current = Subscription.objects.filter(user=request.user).first()
    initial = {
        "active": bool(current and current.active),
        "events": current.events if current else list(OWN_RUN_EVENTS),
    }
    form = SubscriptionForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        values = form.cleaned_data
        Subscription.objects.update_or_create(
            user=request.user,
            defaults={"active": values["active"], "events": values["events"] or initial["events"]},
        )
        audit_record(
            actor=request.user,
            via=Via.WEB,
            verb="notification.subscription",
            obj=request.user,
            details={"active": values["active"], "events": values["events"]},
            request=request,
        )
        messages.success(request, "Saved.")
        return redirect("notifications:mine")
    return render(
        request,
        "notifications/subscription.html",
        {"form": form, "email": request.user.email},
        status=400 if request.method == "POST" else 200,
    )
