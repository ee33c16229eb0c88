import datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from apps.accounts.permissions import can_lock, lock_refusal_reason
from apps.accounts.views import refusal_page
from apps.audit.constants import Via
from apps.catalog.models import Service
from apps.environments import selectors, services
from apps.environments.forms import LockForm
from apps.environments.models import Environment, EnvironmentLock


def _next_url(request, default: str = "/") -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


@login_required
def lock_form(request, environment_slug):
    """Lock an environment, or one service there, for a while, with a reason."""
    environment = Environment.objects.filter(slug=environment_slug).first()
    if environment is None:
        raise Http404("No such environment.")
    whole = can_lock(request.user, environment=environment)
    lockable = [
        service
        for service in Service.objects.filter(actions__environments=environment).distinct()
        if can_lock(request.user, environment=environment, service=service)
    ]
    asked = request.POST.get("service") if request.method == "POST" else request.GET.get("service")
    service = Service.objects.filter(slug=asked).first() if asked else None
    if request.method != "POST" and not (whole or lockable):
        raise PermissionDenied(lock_refusal_reason(request.user, environment=environment))
    form_kwargs = {"environment": environment, "services": lockable, "whole": whole}
    if request.method == "POST":
        form = LockForm(data=request.POST, **form_kwargs)
        if asked and service is None:
            form.add_error("service", f"No service {asked!r}.")
        elif form.is_valid() or lock_refusal_reason(
            request.user, environment=environment, service=service
        ):
            # A refusal is said, and recorded, by the service.
            try:
                lock = services.lock_create(
                    user=request.user,
                    environment=environment,
                    service=service,
                    reason=form.cleaned_data.get("reason", ""),
                    expires_at=timezone.now()
                    + datetime.timedelta(minutes=form.cleaned_data.get("minutes", 0)),
                    via=Via.WEB,
                    request=request,
                )
            except services.LockRefused as exc:
                return refusal_page(request, exc.reason, status=exc.status)
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                what = f"{service.name} on {environment.name}" if service else environment.name
                messages.success(
                    request,
                    f"Locked {what} until {selectors.when(lock.expires_at)}: no run starts "
                    "there until then, unless it is unlocked.",
                )
                return redirect(_next_url(request))
    else:
        form = LockForm(initial={"service": asked or ""}, **form_kwargs)
    return render(
        request,
        "environments/lock_form.html",
        {"environment": environment, "form": form, "next": _next_url(request, "")},
        status=400 if request.method == "POST" else 200,
    )


@login_required
@require_POST
def lock_release(request, lock_id):
    lock = EnvironmentLock.objects.select_related("environment", "service").filter(pk=lock_id)
    lock = lock.first()
    if lock is None:
        raise Http404("No such lock.")
    try:
        services.lock_release(lock=lock, user=request.user, via=Via.WEB, request=request)
    except services.LockRefused as exc:
        if exc.status == 403:
            return refusal_page(request, exc.reason)
        messages.info(request, exc.reason)
    else:
        what = lock.environment.name
        if lock.service_id:
            what = f"{lock.service.name} on {what}"
        messages.success(request, f"Unlocked {what}.")
    return redirect(_next_url(request))
