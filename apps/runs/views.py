from urllib.parse import urlencode

from allauth.account.internal.flows.reauthentication import suspend_request
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.accounts.permissions import (
    can_cancel_run,
    can_run,
    environment_filter,
    reauthentication_reason,
    refusal_reason,
)
from apps.accounts.views import refusal_page
from apps.audit.models import Via
from apps.catalog.parameters import ParameterError, parameters_form_class, secret_names
from apps.catalog.selectors import action_get
from apps.environments.models import Environment
from apps.runs import selectors, services
from apps.runs.ansi import strip_ansi
from apps.runs.constants import RunStatus
from apps.runs.models import Run, RunEvent


def _rerun_of(value: str) -> Run | None:
    # A hidden field a user can edit: anything but a run id is ignored.
    # isascii: "²" is a digit to isdigit() but not to int().
    if not (value.isascii() and value.isdigit()):
        return None
    return Run.objects.filter(pk=int(value)).first()


@login_required
def run_form(request, service_slug, action_slug, environment_slug):
    action = action_get(service_slug=service_slug, action_slug=action_slug)
    environment = Environment.objects.filter(slug=environment_slug).first()
    if action is None or environment is None:
        raise Http404("No such action or environment.")
    form_class = parameters_form_class(action.form)
    check = (
        request.POST.get("check") == "1"
        if request.method == "POST"
        else request.GET.get("check") == "1"
    )

    def launch():
        return services.run_launch(
            user=request.user,
            service=action.service,
            action=action,
            environment=environment,
            parameters=request.POST,
            check=check,
            from_api=False,
            via=Via.WEB,
            request=request,
            rerun_of=_rerun_of(request.POST.get("rerun_of", "")),
        )

    if reason := refusal_reason(request.user, action=action, environment=environment):
        if request.method != "POST":
            raise PermissionDenied(reason)  # said and recorded by the 403 handler
        try:
            launch()  # refuses, and records the attempt in the audit log
        except services.LaunchRefused as exc:
            reason = exc.reason
        return refusal_page(request, reason)
    if reauthentication_reason(request.user, environment=environment, request=request):
        # Ask for a code of the authenticator app, then come back here (a POST is replayed,
        # without its secret values: the session must never hold them; they are re-entered).
        if request.method == "POST":
            request.POST = request.POST.copy()
            for name in secret_names(action.form):
                request.POST.pop(name, None)
        return suspend_request(request, reverse("mfa_reauthenticate"))
    refused = None  # a 409 (the lock, with its holder) or a 503 (the broker is down)
    if request.method == "POST":
        form = form_class(data=request.POST)
        try:
            run = launch()
        except ParameterError as exc:
            # The bound form finds the same field errors itself; add only the others.
            form.is_valid()
            for name, errors in exc.errors.items():
                if name not in form.errors:
                    for error in errors:
                        form.add_error(name if name in form.fields else None, error)
        except services.LaunchRefused as exc:
            if exc.status == 403:
                return refusal_page(request, exc.reason)
            refused = exc
        else:
            return redirect(run)
    else:
        initial = {k: v for k, v in request.GET.items() if k in form_class.base_fields}
        for name, field in form_class.base_fields.items():
            if (
                hasattr(field, "choices")
                and name in request.GET
                and field.widget.allow_multiple_selected
            ):
                initial[name] = request.GET.getlist(name)
        form = form_class(initial=initial)
    return render(
        request,
        "runs/run_form.html",
        {
            "action": action,
            "service": action.service,
            "environment": environment,
            "form": form,
            "check": check,
            "rerun_of": request.GET.get("rerun_of", request.POST.get("rerun_of", "")),
            "refused": refused,
        },
        # The lock (409) and the broker (503) answer as the API does; other refusals
        # are a message on the form.
        status=refused.status if refused and (refused.holder or refused.status == 503) else 200,
    )


@login_required
def run_list(request):
    filters = {k: request.GET.get(k, "") for k in ("service", "environment", "status", "user")}
    page = Paginator(selectors.run_list(user=request.user, filters=filters), 25).get_page(
        request.GET.get("page")
    )
    query = urlencode({k: v for k, v in filters.items() if v})
    return render(
        request,
        "runs/run_list.html",
        {
            "page": page,
            "filters": filters,
            "query": query,
            "statuses": RunStatus.choices,
            "environments": Environment.objects.filter(environment_filter(request.user)),
        },
    )


def _run_or_404(request, run_id) -> Run:
    run = selectors.run_get(user=request.user, run_id=run_id)
    if run is None:
        raise Http404("No such run.")
    return run


@login_required
def run_detail(request, run_id):
    run = _run_or_404(request, run_id)
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
            "can_cancel": can_cancel_run(request.user, run) and not run.is_final,
            "can_rerun": run.action is not None
            and can_run(request.user, action=run.action, environment=run.environment),
            "secret_fields": secret_names(run.form),
        },
    )


@login_required
def run_log(request, run_id):
    """The lines after `after` (an event counter), and the run's state, for the live page."""
    run = _run_or_404(request, run_id)
    try:
        after = int(request.GET.get("after", "0"))
    except ValueError:
        after = 0
    lines, last_counter, more = selectors.run_log_after(run=run, counter=after)
    return render(
        request,
        "runs/_log_update.html",
        {"run": run, "lines": lines, "last_counter": last_counter, "more": more},
    )


@login_required
def run_log_earlier(request, run_id):
    run = _run_or_404(request, run_id)
    try:
        before = int(request.GET["before"])
    except (KeyError, ValueError):
        return HttpResponse("before must be a line number", status=400)
    lines = selectors.run_log_before(run=run, line=before)
    first = lines[0].number if lines else 1
    return render(
        request,
        "runs/_log_earlier.html",
        {"run": run, "lines": lines, "earlier_from": first if first > 1 else None},
    )


@login_required
def run_log_download(request, run_id):
    run = _run_or_404(request, run_id)

    def lines():
        for event in (
            RunEvent.objects.filter(run=run)
            .only("stdout", "start_line")
            .order_by("counter")
            .iterator(2000)
        ):
            for offset, text in enumerate(event.stdout.splitlines()):
                yield f"{event.start_line + offset + 1}\t{strip_ansi(text)}\n"

    response = StreamingHttpResponse(lines(), content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="run-{run.pk}.log"'
    return response


@login_required
@require_POST
def run_cancel(request, run_id):
    # Not looked up through run_get: run_cancel says why not, and records it, itself.
    run = Run.objects.select_related("service", "environment").filter(pk=run_id).first()
    if run is None:
        raise Http404("No such run.")
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
    run = _run_or_404(request, run_id)
    if run.action is None:
        raise Http404("The action of this run no longer exists.")
    secrets = secret_names(run.form)
    params = {k: v for k, v in run.parameters.items() if k not in secrets and v not in (None, "")}
    params["rerun_of"] = run.pk
    if run.check_mode:
        params["check"] = "1"
    url = reverse("runs:form", args=[run.service.slug, run.action_slug, run.environment.slug])
    return redirect(f"{url}?{urlencode(params, doseq=True)}")
