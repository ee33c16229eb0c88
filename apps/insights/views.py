from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from apps.accounts.permissions import can_view, environment_filter
from apps.catalog.selectors import service_page, service_search
from apps.environments.models import Environment
from apps.environments.selectors import active_locks, freeze_in_force
from apps.insights.catalog_views import catalog_query, filter_form
from apps.runs.selectors.deployments import matrix
from apps.workers.selectors import live_queues

# Services per page: the page's cost follows the page, not the size of the catalog.
MATRIX_PAGE_SIZE = 25


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
    page, groups = service_page(
        user=request.user,
        # The actions and their environments are the catalog's buttons: not shown here.
        services=service_search(user=request.user, **filters).prefetch_related(None),
        number=request.GET.get("page"),
        size=MATRIX_PAGE_SIZE,
    )
    services = [service for group in groups for service in group.services]
    cells = matrix(services=services, environments=environments)
    queues = live_queues()
    groups = [
        {
            "group": group,
            "rows": [
                {
                    "service": service,
                    "cells": [
                        cell
                        if can_view(request.user, service=service, environment=cell.environment)
                        else None
                        for cell in cells[service.pk]
                    ],
                }
                for service in group.services
            ],
        }
        for group in groups
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
            "groups": groups,
            "count": page.paginator.count,
            "page": page,
            "query": catalog_query(form),
            "form": form,
            "filtered": form.active,
        },
        status=400 if form.errors else 200,
    )
