"""The catalog and a service's page: what runs where, and the buttons the user may press.

They live here, above runs, because they read deployment state (apps.runs.selectors.deployments);
their URLs keep the catalog's names (apps/insights/catalog_urls.py).
"""

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render

from apps.accounts.permissions import can_run, can_view, mfa_setup_reason, refusal_reason
from apps.catalog.selectors import deploy_action, service_list
from apps.environments.models import Environment
from apps.runs.selectors.deployments import (
    current_versions,
    previous_environment,
    promotion_candidate,
    service_rows,
)
from apps.workers.selectors import live_queues


def _promotion(service, environment, buttons, current):
    """What Promote offers on an environment with the promotion rule, when the user may
    deploy there and it would change something; there, Deploy is not the primary button."""
    if not environment.require_verified:
        return None
    deploy = deploy_action(service=service, environment=environment)
    if deploy is None or deploy not in buttons:
        return None
    candidate = promotion_candidate(service=service, environment=environment)
    if candidate is None or (current is not None and current.version == candidate.version):
        return None
    return candidate


@login_required
def catalog(request):
    environments = list(Environment.objects.all())
    versions = current_versions()
    followers = {env.pk for env in environments if previous_environment(env) is not None}
    queues = live_queues()
    services = []
    for service in service_list(user=request.user):
        rows = []
        for env in environments:
            # Only the environments the user may see, and only the buttons they may press.
            if not can_view(request.user, service=service, environment=env):
                continue
            offered = [a for a in service.actions.all() if env in a.environments.all()]
            buttons = [a for a in offered if can_run(request.user, action=a, environment=env)]
            note = ""
            if offered and not buttons and env.require_mfa:
                # Granted, but no authenticator app yet: say so where the buttons would be.
                reason = refusal_reason(request.user, action=offered[0], environment=env)
                note = reason if reason == mfa_setup_reason(env) else ""
            current = versions.get((service.pk, env.pk))
            rows.append(
                {
                    "environment": env,
                    "current": current,
                    "actions": buttons,
                    "note": note,
                    "promote": _promotion(service, env, buttons, current),
                    # The promotion rule holds here: Deploy is not the primary button.
                    "guarded": env.require_verified and env.pk in followers,
                    "no_worker": not queues.get(env.queue),
                }
            )
        services.append({"service": service, "rows": rows})
    return render(
        request, "catalog/catalog.html", {"services": services, "environments": environments}
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
