"""The catalog and a service's page: what runs where, and the buttons the user may press.

They live here, above runs, because they read deployment state (apps.runs.selectors.deployments);
their URLs keep the catalog's names (apps/insights/catalog_urls.py).
"""

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render

from apps.accounts.permissions import (
    can_run,
    can_view,
    environment_filter,
    mfa_setup_reason,
    refusal_reason,
)
from apps.catalog.constants import ActionKind
from apps.catalog.filters import ServiceFilterForm
from apps.catalog.selectors import service_list, service_page, service_search, with_buttons
from apps.environments.models import Environment
from apps.runs.selectors.deployments import (
    current_versions,
    promotion_candidates,
    service_rows,
)
from apps.workers.selectors import live_queues

# Services per page: the catalog's cost follows the page, not the size of the catalog.
CATALOG_PAGE_SIZE = 25


def catalog_query(form) -> str:
    """The filters as a query string, for the pages' links."""
    data = getattr(form, "cleaned_data", {})
    kept = {
        "q": data.get("q") or "",
        "team": data["team"].slug if data.get("team") else "",
        "environment": data["environment"].slug if data.get("environment") else "",
        "mine": "1" if data.get("mine") else "",
    }
    return urlencode({k: v for k, v in kept.items() if v})


def filter_form(request, *, environments: bool = True) -> ServiceFilterForm:
    """The filters of a list of services, read from the query string (and checked)."""
    choices = Environment.objects.filter(environment_filter(request.user)) if environments else None
    form = ServiceFilterForm(request.GET or None, environments=choices)
    form.is_valid()
    return form


def _deploy_action(service, environment):
    """`deploy_action` among the service's prefetched actions: no query per service."""
    deploys = [
        a
        for a in service.actions.all()
        if a.kind == ActionKind.DEPLOY and a.version_field and environment in a.environments.all()
    ]
    return min(deploys, key=lambda a: (a.position, a.pk), default=None)


def _promotion(service, environment, buttons, current, candidates):
    """What Promote offers on an environment with the promotion rule, when the user may
    deploy there and it would change something; there, Deploy is not the primary button."""
    if not environment.require_verified:
        return None
    deploy = _deploy_action(service, environment)
    if deploy is None or deploy not in buttons:
        return None
    candidate = candidates.get((service.pk, environment.pk))
    if candidate is None or (current is not None and current.version == candidate.version):
        return None
    return candidate


def _rows(user, service, environments, versions, candidates, followers, queues) -> list[dict]:
    rows = []
    actions = list(service.actions.all())
    # Where each action is offered, read once for the service: not once per environment.
    offered_on = {action.pk: {env.pk for env in action.environments.all()} for action in actions}
    for env in environments:
        # Only the environments the user may see, and only the buttons they may press.
        if not can_view(user, service=service, environment=env):
            continue
        offered = [a for a in actions if env.pk in offered_on[a.pk]]
        buttons = [a for a in offered if can_run(user, action=a, environment=env)]
        note = ""
        if offered and not buttons and env.require_mfa:
            # Granted, but no authenticator app yet: say so where the buttons would be.
            reason = refusal_reason(user, action=offered[0], environment=env)
            note = reason if reason == mfa_setup_reason(env) else ""
        current = versions.get((service.pk, env.pk))
        rows.append(
            {
                "environment": env,
                "current": current,
                "actions": buttons,
                "note": note,
                "promote": _promotion(service, env, buttons, current, candidates),
                # The promotion rule holds here: Deploy is not the primary button.
                "guarded": env.require_verified and env.pk in followers,
                "no_worker": not queues.get(env.queue),
            }
        )
    return rows


@login_required
def catalog(request):
    """The services the user may see, grouped by team (their own teams first), each on
    the environments they may see it on, with the buttons they may press. Searched by
    name and description, filtered by team, environment and "mine" (?q=, ?team=,
    ?environment=, ?mine=1): a plain GET form, so a filtered catalog is a link."""
    form = filter_form(request)
    filters = form.filters()
    everywhere = list(Environment.objects.all())
    # An environment follows another (its previous_environment) unless it comes first.
    first = min((env.order for env in everywhere), default=0)
    followers = {env.pk for env in everywhere if env.order > first}
    environments = [env for env in everywhere if filters["environment"] in (None, env)]
    page, groups = service_page(
        user=request.user,
        services=with_buttons(service_search(user=request.user, **filters)),
        number=request.GET.get("page"),
        size=CATALOG_PAGE_SIZE,
    )
    services = [service for group in groups for service in group.services]
    versions = current_versions(services=services, environments=environments)
    queues = live_queues()
    candidates = promotion_candidates(
        services=services, environments=[env for env in environments if env.require_verified]
    )
    groups = [
        {
            "group": group,
            "entries": [
                {
                    "service": service,
                    "rows": _rows(
                        request.user,
                        service,
                        environments,
                        versions,
                        candidates,
                        followers,
                        queues,
                    ),
                }
                for service in group.services
            ],
        }
        for group in groups
    ]
    return render(
        request,
        "catalog/catalog.html",
        {
            "groups": groups,
            "count": page.paginator.count,
            "page": page,
            "query": catalog_query(form),
            "form": form,
            "filtered": form.active,
            "environments": environments,
        },
        status=400 if form.errors else 200,
    )


@login_required
def service_detail(request, service_slug):
    """A service on each environment: what runs there, who put it there and when, the
    last run, drift, history; Promote and Roll back where they would change something."""
    service = service_list(user=request.user).filter(slug=service_slug).first()
    if service is None:
        raise Http404("No such service.")
    rows = service_rows(user=request.user, service=service)
    queues = live_queues()
    no_worker = {row.environment.pk for row in rows if not queues.get(row.environment.queue)}
    return render(
        request,
        "catalog/service_detail.html",
        {"service": service, "rows": rows, "no_worker": no_worker},
    )
