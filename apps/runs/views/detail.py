"""A run's page, and what a person does from it: cancel, run again."""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.accounts.permissions import can_cancel_run, can_run
from apps.accounts.views import refusal_page
from apps.audit.constants import Via
from apps.catalog.constants import ActionKind
from apps.catalog.parameters import secret_names
from apps.environments.constants import WhenLocked
from apps.runs import selectors, services
from apps.runs.models import Run
from apps.runs.selectors.failure import run_failure, run_task_total
from apps.runs.services.checks import lock_holder, waiting_line


def run_or_404(request, run_id) -> Run:
    """The run, if the user may see it; 404 alike for a run hidden from them and one
    that does not exist."""
    run = services.run_for(user=request.user, run_id=run_id, request=request, via=Via.WEB)
    if run is None:
        raise Http404("No such run.")
    return run


@login_required
def run_detail(request, run_id):
    run = run_or_404(request, run_id)
    lines, last_counter = selectors.run_log_tail(run=run)
    first = lines[0].number if lines else 1
    return render(
        request,
        "runs/run_detail.html",
        {
            "run": run,
            "lines": lines,
            "last_counter": last_counter,
            "earlier_from": first if first > 1 else None,
            **run_state(run),
            "diffs": selectors.run_diffs(run=run) if run.check_mode else [],
            "can_cancel": can_cancel_run(request.user, run) and not run.is_final,
            **rerun_offer(request.user, run),
            "secret_fields": secret_names(run.form),
        },
    )


def run_state(run) -> dict:
    """How far the run got, for the top of its page: its progress, the tasks its playbook
    starts (never fewer than seen; a run that succeeded did all it started), and, when
    it failed, timed out or was lost, where it stopped."""
    progress = selectors.run_progress(run=run)
    total = None if run.is_final else run_task_total(run=run)
    return {
        "progress": progress,
        "task_total": max(total, progress.tasks_seen) if total else progress.tasks_seen,
        "failure": run_failure(run=run) if run.is_final else None,
    }


def can_rerun(user, run) -> bool:
    return run.action is not None and can_run(user, action=run.action, environment=run.environment)


def rerun_offer(user, run) -> dict:
    """Whether the page offers to run it again: not while a run holds (or others wait
    for) the deploy lock a new one would need, where the launch would be refused; it
    names that run instead. Where such runs wait in line (the environment queues them),
    it is offered: it waits its turn."""
    if not can_rerun(user, run):
        return {"can_rerun": False}
    waits = run.environment.when_locked == WhenLocked.QUEUE and run.action_kind != ActionKind.VERIFY
    if run.check_mode or waits:
        return {"can_rerun": True}
    holder = lock_holder(run.service, run.environment) or (
        waiting_line(run.service, run.environment).first()
    )
    return {"can_rerun": holder is None, "lock_holder": holder}


@login_required
@require_POST
def run_cancel(request, run_id):
    run = run_or_404(request, run_id)
    try:
        services.run_cancel(run=run, user=request.user, via=Via.WEB, request=request)
    except services.LaunchRefused as exc:
        if exc.status == 403:
            return refusal_page(request, exc.reason)
        messages.error(request, exc.reason)
    else:
        messages.success(request, f"Cancel requested for run #{run.pk}.")
    return redirect(run)


@login_required
def run_again(request, run_id):
    """The form of the run's action, pre-filled with its parameters (never its secrets)."""
    run = run_or_404(request, run_id)
    if run.action is None:
        raise Http404("The action of this run no longer exists.")
    secrets = secret_names(run.form)
    params = {k: v for k, v in run.parameters.items() if k not in secrets and v not in (None, "")}
    params["rerun_of"] = run.pk
    if run.check_mode:
        params["check"] = "1"
    url = reverse("runs:form", args=[run.service.slug, run.action_slug, run.environment.slug])
    return redirect(f"{url}?{urlencode(params, doseq=True)}")


@login_required
def run_follow_ups(request, run_id):
    """The runs this one started by itself, for its page while they go; once they
    ended, the page's buttons again (a verification held the deploy lock meanwhile)."""
    run = run_or_404(request, run_id)
    context = {"run": run, "follow_ups_ended": run.is_final and not run.awaits_follow_ups}
    if context["follow_ups_ended"]:
        context.update(rerun_offer(request.user, run))
    return render(request, "runs/_follow_ups.html", context)
