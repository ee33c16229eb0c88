"""*Report a problem* on a deploy's page, and resolving an incident by hand."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import URLValidator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from apps.accounts.constants import Role
from apps.accounts.permissions import can_view
from apps.audit.constants import Via
from apps.incidents.models import Incident
from apps.incidents.services import IncidentRefused, incident_resolve, report_problem
from apps.runs.services import run_for


def _may_report(user) -> None:
    if getattr(user, "role", None) == Role.AUDITOR:
        raise PermissionDenied("Auditors read; they do not report or resolve incidents.")


@login_required
@require_POST
def run_report(request, run_id: int):
    run = run_for(user=request.user, run_id=run_id, request=request, via=Via.WEB)
    if run is None:
        raise Http404("No such run.")
    _may_report(request.user)
    link = request.POST.get("link", "").strip()[:500]
    if link:
        try:
            URLValidator(schemes=["http", "https"])(link)
        except ValidationError:
            messages.error(request, "The link must be an http:// or https:// URL.")
            return redirect(f"{run.get_absolute_url()}#incidents")
    try:
        report_problem(run=run, user=request.user, title=request.POST.get("title", ""),
                       link=link, request=request)  # fmt: skip
    except IncidentRefused as exc:
        messages.error(request, exc.reason)
    else:
        messages.success(request, "Incident opened. A later deploy or rollback here resolves it.")
    return redirect(f"{run.get_absolute_url()}#incidents")


@login_required
@require_POST
def incident_resolve_view(request, incident_id: int):
    incident = get_object_or_404(Incident, pk=incident_id)
    if not can_view(request.user, service=incident.service, environment=incident.environment):
        raise Http404("No such incident.")
    _may_report(request.user)
    note = request.POST.get("note", "").strip()[:2000]
    back = request.POST.get("next", "")
    back = back if back.startswith("/") and not back.startswith("//") else "/"
    if not note:
        messages.error(request, "Say how it was resolved.")
        return redirect(back)
    incident_resolve(incident=incident, actor=request.user, note=note, request=request)
    messages.success(request, f"Incident #{incident.pk} resolved.")
    return redirect(back)
