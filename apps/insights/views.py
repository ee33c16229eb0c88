from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from apps.accounts.permissions import can_view, environment_filter
from apps.catalog.selectors import service_list
from apps.environments.models import Environment
from apps.environments.selectors import active_locks, freeze_in_force
from apps.runs.selectors.deployments import matrix
from apps.workers.selectors import live_queues


@login_required
def what_runs_where(request):
    """Services x environments: the version on each, the last run, who and when, drift."""
    environments = list(Environment.objects.filter(environment_filter(request.user)))
    services = list(service_list(user=request.user))
    cells = matrix(services=services, environments=environments)
    queues = live_queues()
    rows = [
        {
            "service": service,
            "cells": [
                cell
                if can_view(request.user, service=service, environment=cell.environment)
                else None
                for cell in cells[service.pk]
            ],
        }
        for service in services
    ]
    return render(
        request,
        "insights/matrix.html",
        {
            "environments": [
                {
                    "environment": env,
                    "locks": [
                        lock
                        for lock in active_locks(environment=env).select_related("service")
                        if lock.service is None
                        or can_view(request.user, service=lock.service, environment=env)
                    ],
                    "freeze": freeze_in_force(env),
                    "no_worker": not queues.get(env.queue),
                }
                for env in environments
            ],
            "rows": rows,
        },
    )
