"""Promote and Roll back, from the service page: each a confirmation page showing what
will run and what it replaces; posting it launches through the one launch path."""

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse

from apps.accounts.permissions import refusal_reason
from apps.accounts.views import refusal_page
from apps.audit.constants import Via
from apps.catalog.constants import ActionKind, ParameterInput
from apps.catalog.parameters import ParameterError
from apps.catalog.selectors import deploy_action, service_list
from apps.runs import services
from apps.runs.models import Run
from apps.runs.selectors import deployments
from apps.runs.services import LaunchRefused, LaunchRequest
from apps.runs.views.launching import (
    EMERGENCY_REASON,
    PROMOTED_FROM,
    VERIFY,
    form_context,
    reauthenticate,
    when_locked,
)

_CHANGED = LaunchRefused(
    "What runs there, or what is offered, changed since this page was opened: nothing was "
    "launched. Check the page again.",
    status=409,
)


def _service_row(request, service_slug, environment_slug):
    service = service_list(user=request.user).filter(slug=service_slug).first()
    if service is None:
        raise Http404("No such service.")
    for row in deployments.service_rows(user=request.user, service=service):
        if row.environment.slug == environment_slug:
            return service, row
    raise Http404("No such environment, or you may not see the service there.")


def _seen(version: str, current: Run | None) -> str:
    """What a confirmation page showed (the version offered, the run it replaces), posted
    back so a change in between is caught rather than launched unseen."""
    return f"{version}:{current.pk if current else ''}"


def _launch_confirmed(request, context: dict, *, unfit: str, **launch):
    """Launch what a confirmation page (Promote, Roll back) showed, with its verify box
    and emergency reason: the run's page on success, the refusal page on a 403; any other
    refusal is put in `context["refused"]` for the page to show again (None returned)."""
    req = LaunchRequest(
        user=request.user,
        given_as=ParameterInput.JSON,  # the values a run had before
        via=Via.WEB,
        http_request=request,
        auto_verify=request.POST.get(VERIFY) == "1",
        emergency_reason=request.POST.get(EMERGENCY_REASON, "")[:2000],
        when_locked=when_locked(request, launch["environment"]),
        **launch,
    )
    try:
        return redirect(services.run_launch(req))
    except ParameterError as exc:
        context["refused"] = _unfit(exc, unfit)
    except LaunchRefused as exc:
        if exc.reauthenticate:
            return reauthenticate(request)
        if exc.status == 403:
            return refusal_page(request, exc.reason)
        context["refused"] = exc
    return None


def _unfit(exc: ParameterError, whose: str) -> LaunchRefused:
    """The parameters a run had, taken again, no longer fit the action's form (Ops changed
    it): said on the page, with the way out."""
    return LaunchRefused(
        f"The parameters of {whose} no longer fit the form ({exc}): edit them in the form.",
        status=400,
    )


def _refused_status(exc) -> int:
    return exc.status if exc.status in (409, 503) else 400


def _promotion_context(request, service, row) -> dict:
    """What Promote shows: the candidate from the environment before, or why none."""
    environment = row.environment
    action = deploy_action(service=service, environment=environment)
    offered = action or (
        service.actions.filter(kind=ActionKind.DEPLOY, environments=environment).first()
    )
    if offered is None:
        raise Http404(f"{service} has no deploy action on {environment}.")
    if reason := refusal_reason(request.user, action=offered, environment=environment):
        raise PermissionDenied(reason)  # said and recorded by the 403 handler
    candidate = (
        deployments.promotion_candidate(service=service, environment=environment)
        if action
        else None
    )
    context = {
        "service": service,
        "environment": environment,
        "action": action,
        "row": row,
        "candidate": candidate,
        "source": deployments.previous_environment(environment),
    }
    source, there = context["source"], None
    if candidate is None and action is not None and source is not None:
        there = deployments.current_version(service=service, environment=source)
    if there is not None:  # something runs there, not verified since it was put there
        context["why"] = deployments.promotion_refusal(
            service=service, source=source, target=environment, version=there.version
        )
    current = row.cell.current
    if candidate is not None and current is not None and candidate.version == current.version:
        context["candidate"] = None
        context["already"] = current  # it runs there already
    return context


@login_required
def promote(request, service_slug, environment_slug):
    """The confirmation of a promotion: from which environment to which, the version
    that will run and the one it replaces, the parameters. Posting it launches."""
    service, row = _service_row(request, service_slug, environment_slug)
    context = _promotion_context(request, service, row)
    candidate, action, environment = context["candidate"], context["action"], row.environment
    if candidate is None:
        return render(request, "runs/promote.html", context)
    context.update(form_context(request, action=action, environment=environment))
    context["seen"] = _seen(candidate.version, row.cell.current)
    parameters = deployments.version_parameters(
        service=service, environment=candidate.source, version=candidate.version, action=action
    )
    context["parameters"] = parameters
    context["edit_url"] = (
        reverse("runs:form", args=[service.slug, action.slug, environment.slug])
        + "?"
        + urlencode({**parameters, PROMOTED_FROM: candidate.source.slug}, doseq=True)
    )
    if request.method != "POST":
        context["verify"] = True
        return render(request, "runs/promote.html", context)
    if request.POST.get("seen") != context["seen"]:
        context["refused"] = _CHANGED
    else:
        launched = _launch_confirmed(
            request,
            context,
            unfit="that deploy",
            service=service,
            action=action,
            environment=environment,
            parameters=parameters,  # the JSON values of the source's deploy
            promoted_from=candidate.source,
        )
        if launched is not None:
            return launched
    context["verify"] = request.POST.get(VERIFY) == "1"
    context["emergency_reason"] = request.POST.get(EMERGENCY_REASON, "")
    return render(request, "runs/promote.html", context, status=_refused_status(context["refused"]))


def _rollback_errors(request, targets: dict) -> tuple[dict, str]:
    """The rollback form's own fields: a version chosen, a reason given."""
    errors = {}
    if request.POST.get("to", "") not in targets:
        errors["to"] = "Choose the version to roll back to."
    reason = request.POST.get("reason", "").strip()[:2000]
    if not reason:
        errors["reason"] = "Say why you roll back: it is kept on the run and in the audit log."
    return errors, reason


def _rollback_post(request, context: dict, *, service, environment, action, current):
    targets = {str(run.pk): run for run in context["targets"]}
    errors, reason = _rollback_errors(request, targets)
    context["errors"] = errors
    context["reason"] = request.POST.get("reason", "")
    if not errors:
        parameters = (
            deployments.version_parameters(
                service=service,
                environment=environment,
                version=context["chosen"].version,
                action=action,
            )
            if action.version_field
            else {}
        )
        launched = _launch_confirmed(
            request,
            context,
            unfit="that version",
            service=service,
            action=action,
            environment=environment,
            parameters=parameters,  # the JSON values the run being restored had
            rollback_of=current,
            reason=reason,
        )
        if launched is not None:
            return launched
    status = _refused_status(context["refused"]) if context.get("refused") else 400
    return render(request, "runs/rollback.html", context, status=status)


@login_required
def rollback(request, service_slug, environment_slug):
    """Roll back: pick one of the earlier successful versions (the previous one first),
    see what will change, say why. Posting it launches; the run is marked as the
    rollback of the run that put the current version there."""
    service, row = _service_row(request, service_slug, environment_slug)
    environment, current, action = row.environment, row.cell.current, row.rollback_action
    if not row.actions:
        offered = deploy_action(service=service, environment=environment)
        raise PermissionDenied(
            refusal_reason(request.user, action=offered, environment=environment)
            if offered
            else f"Nothing can be run for {service} on {environment}."
        )
    context = {
        **(form_context(request, action=action, environment=environment) if action else {}),
        "service": service,
        "environment": environment,
        "row": row,
        "current": current,
        "targets": row.rollback_targets,
        "action": action,
    }
    if action is None or current is None:
        return render(request, "runs/rollback.html", context)
    targets = {str(run.pk): run for run in row.rollback_targets}
    context["chosen"] = targets.get(request.POST.get("to", ""), row.rollback_targets[0])
    context["seen"] = _seen("", current)
    if request.method != "POST":
        context["verify"] = True  # as on a deploy's form and Promote: a rollback is a deploy
        return render(request, "runs/rollback.html", context)
    if request.POST.get("seen") != context["seen"]:
        context["refused"] = _CHANGED
        return render(request, "runs/rollback.html", context, status=409)
    return _rollback_post(
        request, context, service=service, environment=environment, action=action, current=current
    )
