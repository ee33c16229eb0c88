"""The catalog and a service's page: what runs where, and the buttons the user may press.

They live here, above runs, because they read deployment state (apps.runs.selectors.deployments);
their URLs keep the catalog's names (apps/insights/catalog_urls.py).
"""

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
from apps.catalog.forms import ServiceFilterForm
from apps.catalog.selectors import service_list, service_search, services_by_team
from apps.environments.models import Environment
from apps.runs.selectors.deployments import (
    current_versions,
    promotion_candidates,
    service_rows,
)


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


def _rows(user, service, environments, versions, candidates, followers) -> list[dict]:
    rows = []
    for env in environments:
        # Only the environments the user may see, and only the buttons they may press.
        if not can_view(user, service=service, environment=env):
            continue
        offered = [a for a in service.actions.all() if env in a.environments.all()]
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
    services = list(
        service_search(
            user=request.user, text=filters["text"], team=filters["team"], mine=filters["mine"]
        )
    )
    versions = current_versions(services=services, environments=environments)
    candidates = promotion_candidates(
        services=services, environments=[env for env in environments if env.require_verified]
    )
    entries = {}
    for service in services:
        rows = _rows(request.user, service, environments, versions, candidates, followers)
        if rows or filters["environment"] is None:
            entries[service.pk] = {"service": service, "rows": rows}
    groups = [
        {"group": group, "entries": [entries[s.pk] for s in group.services if s.pk in entries]}
        for group in services_by_team(user=request.user, services=services)
    ]
    return render(
        request,
        "catalog/catalog.html",
        {
            "groups": [g for g in groups if g["entries"]],
            "count": len(entries),
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
    return render(request, "catalog/service_detail.html", {"service": service, "rows": rows})
