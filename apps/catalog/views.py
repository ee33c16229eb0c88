from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from apps.accounts.permissions import can_run
from apps.catalog.selectors import service_list
from apps.environments.models import Environment
from apps.runs.selectors import current_versions


@login_required
def catalog(request):
    environments = list(Environment.objects.all())
    versions = current_versions()
    services = []
    for service in service_list(user=request.user):
        rows = []
        for env in environments:
            buttons = [
                action
                for action in service.actions.all()
                if env in action.environments.all()
                and can_run(request.user, action=action, environment=env)
            ]
            rows.append(
                {
                    "environment": env,
                    "current": versions.get((service.pk, env.pk)),
                    "actions": buttons,
                }
            )
        services.append({"service": service, "rows": rows})
    return render(
        request, "catalog/catalog.html", {"services": services, "environments": environments}
    )
