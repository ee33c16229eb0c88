"""The schedules' pages: the list, a schedule with its next and recent firings, and the
form that creates or changes one. They translate to and from apps.schedules.services."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.accounts.permissions import can_run, refusal_reason
from apps.audit.constants import Via
from apps.catalog.constants import ParameterInput
from apps.catalog.models import Action
from apps.catalog.parameters import parameters_form_class, secret_names
from apps.catalog.selectors import action_get
from apps.environments.models import Environment
from apps.schedules import selectors, services
from apps.schedules.forms import ScheduleForm
from apps.schedules.models import Schedule


def _visible(request, schedule_id) -> Schedule:
    schedule = get_object_or_404(
        Schedule.objects.select_related("service", "action", "environment"), pk=schedule_id
    )
    if not selectors.can_view_schedule(request.user, schedule):
        raise Http404("No such schedule.")
    return schedule


def _managed(request, schedule_id) -> Schedule:
    schedule = _visible(request, schedule_id)
    if why := selectors.manage_refusal_reason(request.user, schedule):
        raise PermissionDenied(why)  # said and recorded by the 403 handler
    return schedule


def _targets(user) -> list[tuple[Action, Environment]]:
    """What `user` may schedule: each action they may run, on each environment where they
    may, but those asking for a second factor at each launch."""
    actions = Action.objects.select_related("service").prefetch_related("environments")
    return [
        (action, environment)
        for action in actions.order_by("service__name", "label")
        for environment in action.environments.all()
        if not environment.require_mfa and can_run(user, action=action, environment=environment)
    ]


@login_required
def schedule_list(request):
    schedules = list(selectors.schedule_list(user=request.user))
    return render(
        request,
        "schedules/schedule_list.html",
        {
            "schedules": schedules,
            "may_manage": {
                s.pk for s in schedules if not selectors.manage_refusal_reason(request.user, s)
            },
        },
    )


@login_required
def schedule_new(request):
    """Step one: what to schedule (an action on an environment the user may run it on)."""
    targets = _targets(request.user)
    chosen = request.GET.get("target", "")
    for action, environment in targets:
        if chosen == f"{action.pk}:{environment.pk}":
            return redirect("schedules:create", action.service.slug, action.slug, environment.slug)
    return render(
        request,
        "schedules/schedule_new.html",
        {"targets": targets, "unknown": bool(chosen)},
        status=400 if chosen else 200,
    )


def _input(request, form_data: dict, *, action, environment) -> services.ScheduleInput:
    return services.ScheduleInput(
        name=form_data.get("name", ""),
        service=action.service,
        action=action,
        environment=environment,
        kind=form_data.get("kind", ""),
        expression=form_data.get("expression", ""),
        time_zone=form_data.get("time_zone", ""),
        when_busy=form_data.get("when_busy", ""),
        parameters=request.POST,
        given_as=ParameterInput.FORM,
    )


def _own_fields(form: ScheduleForm) -> dict:
    """The schedule's own fields as posted (the service checks them, with a message each)."""
    return {name: form.data.get(form.add_prefix(name), "") for name in form.fields}


def _form_page(request, *, action, environment, form, parameters, schedule=None, status=200):
    return render(
        request,
        "schedules/schedule_form.html",
        {
            "action": action,
            "service": action.service,
            "environment": environment,
            "form": form,
            "parameters": parameters,
            "schedule": schedule,
            "secret_fields": secret_names(action.form),
        },
        status=status,
    )


def _errors_shown(form, parameters, exc: services.ScheduleInvalid) -> None:
    for name, errors in exc.errors.items():
        for error in errors:
            form.add_error(name if name in form.fields else None, error)
    parameters.is_valid()
    for name, errors in exc.parameter_errors.items():
        if name not in parameters.errors:
            for error in errors:
                parameters.add_error(name if name in parameters.fields else None, error)


@login_required
def schedule_create(request, service_slug, action_slug, environment_slug):
    action = action_get(service_slug=service_slug, action_slug=action_slug)
    environment = Environment.objects.filter(slug=environment_slug).first()
    if action is None or environment is None:
        raise Http404("No such action or environment.")
    if why := refusal_reason(request.user, action=action, environment=environment):
        raise PermissionDenied(why)
    parameters_class = parameters_form_class(action.form)
    if request.method != "POST":
        initial = {f["name"]: f["default"] for f in action.form if "default" in f}
        return _form_page(
            request,
            action=action,
            environment=environment,
            form=ScheduleForm(initial={"name": f"{action.label} {action.service.name}"}),
            parameters=parameters_class(initial=initial),
        )
    form, parameters = ScheduleForm(data=request.POST), parameters_class(data=request.POST)
    data = _input(request, _own_fields(form), action=action, environment=environment)
    try:
        schedule = services.schedule_create(
            data=data, acting_user=request.user, via=Via.WEB, request=request
        )
    except services.ScheduleInvalid as exc:
        _errors_shown(form, parameters, exc)
        return _form_page(
            request,
            action=action,
            environment=environment,
            form=form,
            parameters=parameters,
            status=400,
        )
    messages.success(request, f"Scheduled: {schedule.name}.")
    return redirect(schedule)


@login_required
def schedule_edit(request, schedule_id):
    schedule = _managed(request, schedule_id)
    action, environment = schedule.action, schedule.environment
    parameters_class = parameters_form_class(action.form)
    if request.method != "POST":
        secrets = secret_names(action.form)
        initial = {k: v for k, v in schedule.parameters.items() if k not in secrets}
        form = ScheduleForm(
            initial={
                "name": schedule.name,
                "kind": schedule.kind,
                "expression": schedule.expression,
                "time_zone": schedule.time_zone,
                "when_busy": schedule.when_busy,
            }
        )
        return _form_page(
            request,
            action=action,
            environment=environment,
            form=form,
            parameters=parameters_class(initial=initial),
            schedule=schedule,
        )
    form, parameters = ScheduleForm(data=request.POST), parameters_class(data=request.POST)
    data = _input(request, _own_fields(form), action=action, environment=environment)
    try:
        services.schedule_change(
            schedule=schedule, data=data, acting_user=request.user, via=Via.WEB, request=request
        )
    except services.ScheduleInvalid as exc:
        _errors_shown(form, parameters, exc)
        return _form_page(
            request,
            action=action,
            environment=environment,
            form=form,
            parameters=parameters,
            schedule=schedule,
            status=400,
        )
    messages.success(request, f"Changed: {schedule.name}. It runs as you from now on.")
    return redirect(schedule)


@login_required
def schedule_detail(request, schedule_id):
    schedule = _visible(request, schedule_id)
    return render(
        request,
        "schedules/schedule_detail.html",
        {
            "schedule": schedule,
            "next_firings": selectors.schedule_next_firings(schedule),
            "firings": selectors.schedule_recent_firings(schedule),
            "last_refusal": selectors.schedule_last_refusal(schedule),
            "may_manage": selectors.manage_refusal_reason(request.user, schedule) is None,
        },
    )


@login_required
@require_POST
def schedule_pause(request, schedule_id):
    schedule = _managed(request, schedule_id)
    services.schedule_pause(
        schedule=schedule, acting_user=request.user, via=Via.WEB, request=request
    )
    messages.success(request, f"Paused: {schedule.name}.")
    return redirect(schedule)


@login_required
@require_POST
def schedule_resume(request, schedule_id):
    schedule = _managed(request, schedule_id)
    services.schedule_resume(
        schedule=schedule, acting_user=request.user, via=Via.WEB, request=request
    )
    messages.success(request, f"Resumed: {schedule.name}.")
    return redirect(schedule)


@login_required
@require_POST
def schedule_delete(request, schedule_id):
    schedule = _managed(request, schedule_id)
    name = schedule.name
    services.schedule_delete(
        schedule=schedule, acting_user=request.user, via=Via.WEB, request=request
    )
    messages.success(request, f"Deleted: {name}.")
    return redirect(reverse("schedules:list"))
