from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from apps.accounts.permissions import can_view, environment_filter
from apps.catalog.selectors import service_search, services_by_team
from apps.environments.models import Environment
from apps.environments.selectors import active_locks, freeze_in_force
from apps.insights.catalog_views import filter_form
from apps.runs.selectors.deployments import matrix


@login_required
def what_runs_where(request):
    """Services x environments: the version on each, the last run, who and when, drift.
    Grouped by team (the user's own first) and filtered as the catalog is (?q=, ?team=,
    ?environment= for one column, ?mine=1)."""
    form = filter_form(request)
    filters = form.filters()
    environments = [
        env
        for env in Environment.objects.filter(environment_filter(request.user))
        if filters["environment"] in (None, env)
    ]
    services = list(
        service_search(
            user=request.user, text=filters["text"], team=filters["team"], mine=filters["mine"]
        )
    )
    cells = matrix(services=services, environments=environments)
    rows = {}
    for service in services:
        visible = [
            cell if can_view(request.user, service=service, environment=cell.environment) else None
            for cell in cells[service.pk]
        ]
        # Filtered to an environment, a service the user may not see there is left out.
        if filters["environment"] is None or any(visible):
            rows[service.pk] = {"service": service, "cells": visible}
    groups = [
        {"group": group, "rows": [rows[s.pk] for s in group.services if s.pk in rows]}
        for group in services_by_team(user=request.user, services=services)
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
                }
                for env in environments
            ],
            "groups": [g for g in groups if g["rows"]],
            "count": len(rows),
            "form": form,
            "filtered": form.active,
        },
        status=400 if form.errors else 200,
    )
