from datetime import date, datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from allauth.account.internal.flows.reauthentication import suspend_request
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.accounts.permissions import (
    can_cancel_run,
    can_override_freeze,
    can_run,
    environment_filter,
    reauthentication_reason,
    refusal_reason,
    service_filter,
)
from apps.accounts.services import refusal_record
from apps.accounts.views import refusal_page
from apps.audit.models import Via
from apps.catalog.constants import ActionKind
from apps.catalog.models import Service
from apps.catalog.parameters import ParameterError, parameters_form_class, secret_names
from apps.catalog.selectors import action_get, deploy_action, service_list, verify_action
from apps.environments.models import Environment
from apps.environments.selectors import launch_block
from apps.insights import selectors as insights
from apps.insights.selectors import service_rows
from apps.runs import selectors, services
from apps.runs.constants import RunStatus
from apps.runs.models import Run
from portal.crypto import DecryptionError, decrypt_json, encrypt_json


def _rerun_of(value: str) -> Run | None:
    # A hidden field a user can edit: anything but a run id is ignored.
    # isascii: "²" is a digit to isdigit() but not to int().
    if not (value.isascii() and value.isdigit()):
        return None
    return Run.objects.filter(pk=int(value)).first()


# The portal's own controls on a run form: field names starting with "pushbutton_"
# are reserved, so no action's form can collide with them.
VERIFY = "pushbutton_verify"
EMERGENCY_REASON = "pushbutton_emergency_reason"
PROMOTED_FROM = "pushbutton_from"
CONFIRMED = "pushbutton_confirmed"
SEALED = "pushbutton_sealed"


def _launch_options(request, *, action, environment) -> dict:
    """What a posted run form asks for besides the parameters."""
    data = request.POST
    source = Environment.objects.filter(slug=data.get(PROMOTED_FROM, "")).first()
    return {
        "check": data.get("check") == "1",
        "auto_verify": data.get(VERIFY) == "1",
        "emergency_reason": data.get(EMERGENCY_REASON, "")[:2000],
        "promoted_from": source if source and source.order < environment.order else None,
        "rerun_of": _rerun_of(data.get("rerun_of", "")),
    }


SEALED_FOR_SECONDS = 900


def _seal(secrets: dict, *, request, action, environment) -> str:
    """Secret values a confirmation page carries back: encrypted with the portal's key,
    bound to this user, action and environment, and good for a quarter of an hour."""
    return encrypt_json(
        {"user": request.user.pk, "action": action.pk, "env": environment.pk, "values": secrets}
    )


def _unseal(sealed: str, *, request, action, environment) -> dict:
    try:
        content = decrypt_json(sealed, ttl=SEALED_FOR_SECONDS)
    except (DecryptionError, ValueError):
        return {}  # expired or forged: the form asks for the secrets again
    if not isinstance(content, dict) or (
        content.get("user"),
        content.get("action"),
        content.get("env"),
    ) != (request.user.pk, action.pk, environment.pk):
        return {}
    return content.get("values") or {}


def _posted_parameters(request, *, action, environment):
    """The POST, with the secret values a confirmation page carried sealed put back."""
    data = request.POST.copy()
    sealed = data.get(SEALED, "")
    if sealed:
        secrets = _unseal(sealed, request=request, action=action, environment=environment)
        for name in secret_names(action.form):
            if name in secrets and not data.get(name):
                data[name] = secrets[name]
    return data


def _form_context(request, *, action, environment) -> dict:
    """What a run form shows around its fields: the version running there now, the lock
    or freeze in force, whether an emergency override is possible, the last dry run."""
    block = launch_block(service=action.service, environment=environment)
    verify = verify_action(service=action.service, environment=environment)
    return {
        "current": insights.current_version(service=action.service, environment=environment),
        "env_block": block,
        "may_override": bool(block and block.overridable)
        and can_override_freeze(request.user, environment=environment),
        "offers_verify": action.kind == ActionKind.DEPLOY and verify is not None,
        "verify_action": verify,
        "last_dry_run": insights.last_dry_run(
            service=action.service, environment=environment, action=action
        ),
        "source": insights.previous_environment(environment),
        "names": {
            "verify": VERIFY,
            "emergency_reason": EMERGENCY_REASON,
            "promoted_from": PROMOTED_FROM,
            "confirmed": CONFIRMED,
            "sealed": SEALED,
        },
    }


@login_required
def run_form(request, service_slug, action_slug, environment_slug):
    action = action_get(service_slug=service_slug, action_slug=action_slug)
    environment = Environment.objects.filter(slug=environment_slug).first()
    if action is None or environment is None:
        raise Http404("No such action or environment.")
    form_class = parameters_form_class(action.form)
    posted = request.method == "POST"
    options = _launch_options(request, action=action, environment=environment) if posted else {}
    check = options["check"] if posted else request.GET.get("check") == "1"
    launch_args = dict(
        user=request.user,
        service=action.service,
        action=action,
        environment=environment,
        from_api=False,
        via=Via.WEB,
        request=request,
    )

    if reason := refusal_reason(request.user, action=action, environment=environment):
        if not posted:
            raise PermissionDenied(reason)  # said and recorded by the 403 handler
        try:
            services.run_launch(**launch_args, parameters=request.POST, **options)
        except services.LaunchRefused as exc:  # refuses, and records it in the audit log
            reason = exc.reason
        return refusal_page(request, reason)
    if reauthentication_reason(request.user, environment=environment, request=request):
        # Ask for a code of the authenticator app, then come back here (a POST is replayed,
        # without its secret values: the session must never hold them; they are re-entered).
        if posted:
            request.POST = request.POST.copy()
            for name in secret_names(action.form):
                request.POST.pop(name, None)
            request.POST.pop(SEALED, None)
        return suspend_request(request, reverse("mfa_reauthenticate"))
    context = _form_context(request, action=action, environment=environment)
    refused = None  # a 409 (the lock, a freeze, the promotion rule) or a 503 (the broker)
    if posted:
        parameters = _posted_parameters(request, action=action, environment=environment)
        form = form_class(data=parameters)
        confirming = environment.confirm_runs and not check and not request.POST.get(CONFIRMED)
        try:
            if confirming:
                plan = services.run_plan(
                    **launch_args,
                    parameters=parameters,
                    **{k: v for k, v in options.items() if k != "rerun_of"},
                )
            else:
                run = services.run_launch(**launch_args, parameters=parameters, **options)
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
            if not confirming:
                return redirect(run)
            return render(
                request,
                "runs/run_confirm.html",
                {
                    **context,
                    "action": action,
                    "service": action.service,
                    "environment": environment,
                    "plan": plan,
                    "options": options,
                    "hidden": [
                        (k, v)
                        for k in parameters
                        if k not in secret_names(action.form)
                        and k not in ("csrfmiddlewaretoken", SEALED, CONFIRMED)
                        for v in parameters.getlist(k)
                    ],
                    "sealed": _seal(
                        plan.secrets, request=request, action=action, environment=environment
                    )
                    if plan.secrets
                    else "",
                    "parameters": plan.masked,
                    "secret_fields": secret_names(action.form),
                },
            )
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
    data = request.POST if posted else request.GET
    return render(
        request,
        "runs/run_form.html",
        {
            **context,
            "action": action,
            "service": action.service,
            "environment": environment,
            "form": form,
            "check": check,
            "verify": data.get(VERIFY, "1" if not posted else "") == "1",
            "emergency_reason": data.get(EMERGENCY_REASON, ""),
            "promoted_from": Environment.objects.filter(slug=data.get(PROMOTED_FROM, "")).first(),
            "rerun_of": data.get("rerun_of", ""),
            "refused": refused,
        },
        # The lock (409) and the broker (503) answer as the API does; other refusals
        # are a message on the form.
        status=refused.status if refused and (refused.holder or refused.status == 503) else 200,
    )


def _service_row(request, service_slug, environment_slug):
    service = service_list(user=request.user).filter(slug=service_slug).first()
    if service is None:
        raise Http404("No such service.")
    for row in service_rows(user=request.user, service=service):
        if row.environment.slug == environment_slug:
            return service, row
    raise Http404("No such environment, or you may not see the service there.")


_CHANGED = services.LaunchRefused(
    "What runs there, or what is offered, changed since this page was opened: nothing was "
    "launched. Check the page again.",
    status=409,
)


def _seen(version: str, current: Run | None) -> str:
    """What a confirmation page showed (the version offered, the run it replaces), posted
    back so a change in between is caught rather than launched unseen."""
    return f"{version}:{current.pk if current else ''}"


def _reauthenticate(request, environment):
    """On an environment that requires it, ask for the authenticator's code first (the
    POST is replayed afterwards); None when no confirmation is needed."""
    if reauthentication_reason(request.user, environment=environment, request=request):
        return suspend_request(request, reverse("mfa_reauthenticate"))
    return None


def _launch_confirmed(request, context: dict, *, unfit: str, **launch):
    """Launch what a confirmation page (Promote, Roll back) showed, with its verify box
    and emergency reason: the run's page on success, the refusal page on a 403; any other
    refusal is put in `context["refused"]` for the page to show again (None returned)."""
    try:
        run = services.run_launch(
            user=request.user,
            from_api=True,
            via=Via.WEB,
            request=request,
            auto_verify=request.POST.get(VERIFY) == "1",
            emergency_reason=request.POST.get(EMERGENCY_REASON, "")[:2000],
            **launch,
        )
    except ParameterError as exc:
        context["refused"] = _unfit(exc, unfit)
    except services.LaunchRefused as exc:
        if exc.status == 403:
            return refusal_page(request, exc.reason)
        context["refused"] = exc
    else:
        return redirect(run)
    return None


def _unfit(exc: ParameterError, whose: str) -> services.LaunchRefused:
    """The parameters a run had, taken again, no longer fit the action's form (Ops changed
    it): said on the page, with the way out."""
    return services.LaunchRefused(
        f"The parameters of {whose} no longer fit the form ({exc}): edit them in the form.",
        status=400,
    )


def _refused_status(exc) -> int:
    return exc.status if exc.status in (409, 503) else 400


@login_required
def promote(request, service_slug, environment_slug):
    """The confirmation of a promotion: from which environment to which, the version
    that will run and the one it replaces, the parameters. Posting it launches."""
    service, row = _service_row(request, service_slug, environment_slug)
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
        insights.promotion_candidate(service=service, environment=environment) if action else None
    )
    context = {
        "service": service,
        "environment": environment,
        "action": action,
        "row": row,
        "candidate": candidate,
        "source": insights.previous_environment(environment),
    }
    current = row.cell.current
    if candidate is not None and current is not None and candidate.version == current.version:
        candidate = context["candidate"] = None
        context["already"] = current  # it runs there already
    if candidate is None:
        return render(request, "runs/promote.html", context)
    context.update(_form_context(request, action=action, environment=environment))
    context["seen"] = _seen(candidate.version, current)
    parameters = insights.version_parameters(
        service=service, environment=candidate.source, version=candidate.version, action=action
    )
    context["parameters"] = parameters
    context["edit_url"] = (
        reverse("runs:form", args=[service.slug, action.slug, environment.slug])
        + "?"
        + urlencode({**parameters, PROMOTED_FROM: candidate.source.slug}, doseq=True)
    )
    if request.method == "POST" and (response := _reauthenticate(request, environment)):
        return response
    if request.method == "POST" and request.POST.get("seen") != context["seen"]:
        context["refused"] = _CHANGED
    elif request.method == "POST":
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
    if request.method == "POST":
        context["verify"] = request.POST.get(VERIFY) == "1"
        context["emergency_reason"] = request.POST.get(EMERGENCY_REASON, "")
        return render(
            request, "runs/promote.html", context, status=_refused_status(context["refused"])
        )
    context["verify"] = True
    return render(request, "runs/promote.html", context)


@login_required
def rollback(request, service_slug, environment_slug):
    """Roll back: pick one of the earlier successful versions (the previous one first),
    see what will change, say why. Posting it launches; the run is marked as the
    rollback of the run that put the current version there."""
    service, row = _service_row(request, service_slug, environment_slug)
    environment = row.environment
    current = row.cell.current
    action = row.rollback_action
    if not row.actions:
        offered = deploy_action(service=service, environment=environment)
        raise PermissionDenied(
            refusal_reason(request.user, action=offered, environment=environment)
            if offered
            else f"Nothing can be run for {service} on {environment}."
        )
    context = {
        **(_form_context(request, action=action, environment=environment) if action else {}),
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
    chosen = targets.get(request.POST.get("to", ""), row.rollback_targets[0])
    context["chosen"] = chosen
    context["seen"] = _seen("", current)
    if request.method == "POST" and (response := _reauthenticate(request, environment)):
        return response
    if request.method == "POST" and request.POST.get("seen") != context["seen"]:
        context["refused"] = _CHANGED
        return render(request, "runs/rollback.html", context, status=409)
    if request.method == "POST":
        errors = {}
        if request.POST.get("to", "") not in targets:
            errors["to"] = "Choose the version to roll back to."
        reason = request.POST.get("reason", "").strip()[:2000]
        if not reason:
            errors["reason"] = "Say why you roll back: it is kept on the run and in the audit log."
        context["errors"] = errors
        context["reason"] = request.POST.get("reason", "")
        if not errors:
            if action.version_field:
                parameters = insights.version_parameters(
                    service=service,
                    environment=environment,
                    version=chosen.version,
                    action=action,
                )
            else:
                parameters = {}
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
    return render(request, "runs/rollback.html", context)


@login_required
def run_list(request):
    """Runs the user may see, filtered by service, environment, status, user and days
    (in the reader's time zone `tz`, which portal.js fills in; UTC without it). `?run=N`
    opens run N, or says here that there is none or why the user may not see it."""
    get = request.GET
    errors: dict[str, str] = {}
    status = 200
    wanted = get.get("run", "").strip().removeprefix("#")
    if wanted:
        if not (wanted.isascii() and wanted.isdigit()) or len(wanted) > 12:
            errors["run"], status = "A run number is digits only, e.g. 42.", 400
        else:
            try:
                run = selectors.run_get(user=request.user, run_id=int(wanted))
            except PermissionDenied as exc:
                refusal_record(user=request.user, reason=str(exc), request=request, via=Via.WEB)
                errors["run"], status = f"You may not see run #{wanted}: {exc}", 403
            else:
                if run is not None:
                    return redirect(run)
                errors["run"], status = f"There is no run #{wanted}.", 404
    names = ("service", "environment", "status", "user", "from", "to")
    filters = {name: get.get(name, "").strip() for name in names}
    try:
        zone = ZoneInfo(get.get("tz", "")[:64] or "UTC")
    except (ValueError, OSError, ZoneInfoNotFoundError):
        zone = ZoneInfo("UTC")
    days = {}
    for name in ("from", "to"):
        try:
            days[name] = date.fromisoformat(filters[name]) if filters[name] else None
        except ValueError:
            errors[name], status = "A day is written YYYY-MM-DD, e.g. 2026-01-31.", 400
            days[name] = None
    if days["from"] and days["to"] and days["from"] > days["to"]:
        errors["to"], status = "The last day is before the first.", 400
        days["to"] = None
    midnight = datetime.min.time()
    since = days["from"] and datetime.combine(days["from"], midnight, tzinfo=zone)
    until = days["to"] and datetime.combine(days["to"] + timedelta(days=1), midnight, tzinfo=zone)
    runs = selectors.run_list(
        user=request.user, filters={**filters, "since": since, "until": until}
    )
    page = Paginator(runs, 25).get_page(get.get("page"))
    kept = {k: v for k, v in filters.items() if v}
    if kept.keys() & {"from", "to"}:
        kept["tz"] = str(zone)
    return render(
        request,
        "runs/run_list.html",
        {
            "page": page,
            "filters": filters,
            "wanted": wanted,
            "errors": errors,
            "zone": zone,
            "query": urlencode(kept),
            "statuses": RunStatus.choices,
            "services": Service.objects.filter(service_filter(request.user)).order_by("name"),
            "environments": Environment.objects.filter(environment_filter(request.user)),
        },
        status=status,
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
            "progress": selectors.run_progress(run=run),
            "diffs": selectors.run_diffs(run=run) if run.check_mode else [],
            "can_cancel": can_cancel_run(request.user, run) and not run.is_final,
            "can_rerun": _can_rerun(request.user, run),
            "secret_fields": secret_names(run.form),
        },
    )


def _line_number(request, name: str) -> int | None:
    """A line number from the query string, or None when it is not one."""
    value = request.GET.get(name, "")
    # isascii: "²" is a digit to isdigit() but not to int().
    return int(value) if value.isascii() and value.isdigit() and len(value) < 10 else None


def _can_rerun(user, run) -> bool:
    return run.action is not None and can_run(user, action=run.action, environment=run.environment)


@login_required
def run_log(request, run_id):
    """The lines after `after` (an event counter), and the run's state, for the live page:
    the progress when something happened, the diffs once a dry run has ended."""
    run = _run_or_404(request, run_id)
    after = _line_number(request, "after") or 0
    lines, last_counter, more = selectors.run_log_after(run=run, counter=after)
    ended = run.is_final and not more
    return render(
        request,
        "runs/_log_update.html",
        {
            "run": run,
            "lines": lines,
            "last_counter": last_counter,
            "more": more,
            "progress": selectors.run_progress(run=run)
            if last_counter > after or run.is_final
            else None,
            "diffs": selectors.run_diffs(run=run) if ended and run.check_mode else [],
            # Once it ended, its facts and buttons are sent again (finished at, no Cancel).
            "ended": ended,
            "can_rerun": ended and _can_rerun(request.user, run),
        },
    )


@login_required
def run_log_earlier(request, run_id):
    run = _run_or_404(request, run_id)
    before = _line_number(request, "before")
    if before is None:
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
    """The whole log as plain text: line number, timestamp and text, as the page shows."""
    run = _run_or_404(request, run_id)
    response = StreamingHttpResponse(
        selectors.run_log_text(run=run), content_type="text/plain; charset=utf-8"
    )
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


# --- the log beyond its tail: later lines, a window around a line, search ----------
@login_required
def run_log_later(request, run_id):
    """The lines after line `after`, below a window of the log (and a button for more)."""
    run = _run_or_404(request, run_id)
    after = _line_number(request, "after")
    if after is None:
        return HttpResponse("after must be a line number", status=400)
    lines = selectors.run_log_later(run=run, line=after)
    last = lines[-1].number if lines else after
    return render(
        request,
        "runs/_log_later.html",
        {"run": run, "lines": lines, "later_from": last if last < run.line_count else None},
    )


@login_required
def run_log_window(request, run_id):
    """The log's content around line `line` (a `#L123` link, a search match), with the
    buttons for the lines before and after it; `?line=tail` gives the tail the page
    first shows."""
    run = _run_or_404(request, run_id)
    if request.GET.get("line") == "tail":
        lines, _ = selectors.run_log_tail(run=run)
    else:
        line = _line_number(request, "line")
        if line is None:
            return HttpResponse("line must be a line number or tail", status=400)
        lines = selectors.run_log_window(run=run, line=line)
    first = lines[0].number if lines else 1
    last = lines[-1].number if lines else 0
    return render(
        request,
        "runs/_log_window.html",
        {
            "run": run,
            "lines": lines,
            "earlier_from": first if first > 1 else None,
            "later_from": last if last < run.line_count else None,
        },
    )


SEARCH_MAX_CHARS = 200


@login_required
def run_log_search(request, run_id):
    """Every match of `q` in the whole log: the lines and the count, as JSON."""
    run = _run_or_404(request, run_id)
    query = request.GET.get("q", "")
    if not query.strip() or len(query) > SEARCH_MAX_CHARS or "\x00" in query:
        return JsonResponse(
            {"detail": f"q must be some text, at most {SEARCH_MAX_CHARS} characters."},
            status=400,
        )
    found = selectors.run_log_search(run=run, query=query)
    return JsonResponse(
        {
            "q": query,
            "total": found.total,
            "upto": found.upto,
            "hits": found.hits,
            # More matches than the hits listed (on lines beyond the first SEARCH_HITS).
            "truncated": found.total > sum(count for _, count in found.hits),
        }
    )


@login_required
def run_follow_ups(request, run_id):
    """The runs this one started by itself, for its page while they go."""
    return render(request, "runs/_follow_ups.html", {"run": _run_or_404(request, run_id)})
