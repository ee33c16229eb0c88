from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from apps.accounts.permissions import can_view, environment_filter
from apps.catalog.selectors import service_page, service_search
from apps.environments.models import Environment
from apps.environments.selectors import FreezeInForce, active_locks, freezes_in_force
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
    cells = matrix(services=services, environments=environments, lean=True)
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
            "environments": _columns(request.user, environments, queues),
            "groups": groups,
            "count": page.paginator.count,
            "page": page,
            "query": catalog_query(form),
            "form": form,
            "filtered": form.active,
        },
        status=400 if form.errors else 200,
    )


def _columns(user, environments, queues) -> list[dict]:
    """Each environment's column head: its locks the user may see, the freeze in force
    (the one that ends last), whether a live worker consumes its queue. Read for all the
    columns at once."""
    locks: dict[int, list] = {}
    for lock in active_locks().filter(environment__in=environments):
        if lock.service is None or can_view(
            user, service=lock.service, environment=lock.environment
        ):
            locks.setdefault(lock.environment_id, []).append(lock)
    freezes: dict[int, FreezeInForce] = {}
    for freeze in freezes_in_force(environments=environments):
        known = freezes.get(freeze.environment.pk)
        if known is None or freeze.until > known.until:
            freezes[freeze.environment.pk] = freeze
    return [
        {
            "environment": env,
            "locks": locks.get(env.pk, []),
            "freeze": freezes.get(env.pk),
            "no_worker": not queues.get(env.queue),
        }
        for env in environments
    ]
