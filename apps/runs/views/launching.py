"""The run form and its confirmation: they build a LaunchRequest and hand it to the one
launch path (apps.runs.services.launch); what comes back is turned into a page."""

from allauth.account.internal.flows.reauthentication import suspend_request
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse

from apps.accounts.permissions import (
    can_override_freeze,
    reauthentication_reason,
    refusal_reason,
)
from apps.accounts.views import refusal_page
from apps.audit.constants import Via
from apps.catalog.constants import ActionKind, ParameterInput
from apps.catalog.parameters import ParameterError, parameters_form_class, secret_names
from apps.catalog.selectors import action_get, verify_action
from apps.environments.constants import WhenLocked
from apps.environments.models import Environment
from apps.environments.selectors import launch_block
from apps.runs import services
from apps.runs.models import Run
from apps.runs.selectors import deployments
from apps.runs.services import LaunchRefused, LaunchRequest
from apps.workers.selectors import no_worker_reason
from portal.crypto import DecryptionError, decrypt_json, encrypt_json

# The portal's own controls on a run form: field names starting with "pushbutton_"
# are reserved, so no action's form can collide with them.
VERIFY = "pushbutton_verify"
EMERGENCY_REASON = "pushbutton_emergency_reason"
QUEUE = "pushbutton_queue"
PROMOTED_FROM = "pushbutton_from"
CONFIRMED = "pushbutton_confirmed"
SEALED = "pushbutton_sealed"
SEALED_FOR_SECONDS = 900


def _rerun_of(value: str) -> Run | None:
    # A hidden field a user can edit: anything but a run id is ignored.
    # isascii: "²" is a digit to isdigit() but not to int().
    if not (value.isascii() and value.isdigit()):
        return None
    return Run.objects.filter(pk=int(value)).first()


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


def _launch_request(request, *, action, environment) -> LaunchRequest:
    """What a posted run form asks for: its fields, as form text, and its options."""
    data = request.POST
    source = Environment.objects.filter(slug=data.get(PROMOTED_FROM, "")).first()
    return LaunchRequest(
        user=request.user,
        service=action.service,
        action=action,
        environment=environment,
        parameters=_posted_parameters(request, action=action, environment=environment),
        given_as=ParameterInput.FORM,
        via=Via.WEB,
        http_request=request,
        check=data.get("check") == "1",
        auto_verify=data.get(VERIFY) == "1",
        emergency_reason=data.get(EMERGENCY_REASON, "")[:2000],
        when_locked=when_locked(request, environment),
        promoted_from=source if source and source.order < environment.order else None,
        rerun_of=_rerun_of(data.get("rerun_of", "")),
    )


def reauthenticate(request, *, secret_fields=()):
    """Ask for a code of the authenticator app, then come back here (a POST is replayed
    without its secret values: the session must never hold them; they are re-entered)."""
    if request.method == "POST":
        request.POST = request.POST.copy()
        for name in (*secret_fields, SEALED):
            request.POST.pop(name, None)
    return suspend_request(request, reverse("mfa_reauthenticate"))


def when_locked(request, environment) -> str:
    """What a posted form asks when the deploy lock is held (its "wait in line" box);
    before it is posted, what the environment says."""
    if request.method != "POST":
        return environment.when_locked
    return WhenLocked.QUEUE if request.POST.get(QUEUE) == "1" else WhenLocked.REFUSE


def form_context(request, *, action, environment) -> dict:
    """What a run form shows around its fields: the version running there now, the lock
    or freeze in force, whether an emergency override is possible, the last dry run."""
    block = launch_block(service=action.service, environment=environment)
    verify = verify_action(service=action.service, environment=environment)
    return {
        "current": deployments.current_version(service=action.service, environment=environment),
        "env_block": block,
        "may_override": bool(block and block.overridable)
        and can_override_freeze(request.user, environment=environment),
        "offers_verify": action.kind == ActionKind.DEPLOY and verify is not None,
        # A verification checks what runs there now: it never waits in the deploy queue.
        "offers_queue": action.kind != ActionKind.VERIFY,
        "queue": when_locked(request, environment) == WhenLocked.QUEUE,
        "verify_action": verify,
        # Said before the press, as the refusal will say it after.
        "no_worker": no_worker_reason(queue=environment.queue, environment=environment.name),
        "last_dry_run": deployments.last_dry_run(
            service=action.service, environment=environment, action=action
        ),
        "source": deployments.previous_environment(environment),
        "names": {
            "verify": VERIFY,
            "emergency_reason": EMERGENCY_REASON,
            "queue": QUEUE,
            "promoted_from": PROMOTED_FROM,
            "confirmed": CONFIRMED,
            "sealed": SEALED,
        },
    }


def _blank_form(request, form_class):
    """The form as a link opened it: fields filled from the query string."""
    initial = {k: v for k, v in request.GET.items() if k in form_class.base_fields}
    for name, field in form_class.base_fields.items():
        if (
            hasattr(field, "choices")
            and name in request.GET
            and field.widget.allow_multiple_selected
        ):
            initial[name] = request.GET.getlist(name)
    return form_class(initial=initial)


def _field_errors(form, exc: ParameterError) -> None:
    """The bound form finds the same field errors itself; add only the others."""
    form.is_valid()
    for name, errors in exc.errors.items():
        if name not in form.errors:
            for error in errors:
                form.add_error(name if name in form.fields else None, error)


def _confirmation(request, req: LaunchRequest, plan, context: dict):
    secret_fields = secret_names(req.action.form)
    parameters = req.parameters
    return render(
        request,
        "runs/run_confirm.html",
        {
            **context,
            "action": req.action,
            "service": req.service,
            "environment": req.environment,
            "plan": plan,
            "options": req,
            "hidden": [
                (k, v)
                for k in parameters
                if k not in secret_fields and k not in ("csrfmiddlewaretoken", SEALED, CONFIRMED)
                for v in parameters.getlist(k)
            ],
            "sealed": _seal(
                plan.secrets, request=request, action=req.action, environment=req.environment
            )
            if plan.secrets
            else "",
            "parameters": plan.masked,
            "secret_fields": secret_fields,
        },
    )


def _focus(form, action) -> None:
    """The field a person fills first has the focus as the form opens: the first one in
    error, else the version, else the first field."""
    fields = form.fields
    errors = [name for name in fields if name in form.errors] if form.is_bound else []
    first = errors[:1] or [n for n in (action.version_field, *fields) if n in fields][:1]
    if first:
        fields[first[0]].widget.attrs["autofocus"] = True


def _form_page(request, *, action, environment, form, context, refused=None):
    posted = request.method == "POST"
    _focus(form, action)
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
            "check": data.get("check") == "1",
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


def _post(request, *, action, environment, form_class):
    """A posted run form: confirm first where the environment asks for it, else launch."""
    req = _launch_request(request, action=action, environment=environment)
    form = form_class(data=req.parameters)
    confirming = environment.confirm_runs and not req.check and not request.POST.get(CONFIRMED)
    try:
        if confirming:
            plan = services.run_plan(req)
            context = form_context(request, action=action, environment=environment)
            return _confirmation(request, req, plan, context)
        return redirect(services.run_launch(req))
    except ParameterError as exc:
        _field_errors(form, exc)
        refused = None
    except LaunchRefused as exc:
        if exc.reauthenticate:
            return reauthenticate(request, secret_fields=secret_names(action.form))
        if exc.status == 403:
            return refusal_page(request, exc.reason)
        refused = exc  # a 409 (the lock, a freeze, the promotion rule) or a 503 (the broker)
    return _form_page(
        request,
        action=action,
        environment=environment,
        form=form,
        context=form_context(request, action=action, environment=environment),
        refused=refused,
    )


@login_required
def run_form(request, service_slug, action_slug, environment_slug):
    action = action_get(service_slug=service_slug, action_slug=action_slug)
    environment = Environment.objects.filter(slug=environment_slug).first()
    if action is None or environment is None:
        raise Http404("No such action or environment.")
    form_class = parameters_form_class(action.form)
    if request.method == "POST":
        return _post(request, action=action, environment=environment, form_class=form_class)
    if reason := refusal_reason(request.user, action=action, environment=environment):
        raise PermissionDenied(reason)  # said and recorded by the 403 handler
    if reauthentication_reason(request.user, environment=environment, request=request):
        return reauthenticate(request)
    return _form_page(
        request,
        action=action,
        environment=environment,
        form=_blank_form(request, form_class),
        context=form_context(request, action=action, environment=environment),
    )
