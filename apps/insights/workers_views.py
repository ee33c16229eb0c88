from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render

from apps.accounts.permissions import can_see_workers
from apps.insights.workers import workers_overview

REFUSED = "Only Ops and auditors see the workers and their queues."


@login_required
def workers_page(request):
    """The workers, their queues and runs; each environment's queue, live or not."""
    if not can_see_workers(request.user):
        raise PermissionDenied(REFUSED)  # said and recorded by the 403 handler
    workers, queues, housekeeping = workers_overview()
    return render(
        request,
        "insights/workers.html",
        {
            "workers": workers,
            "queues": queues,
            "housekeeping": housekeeping,
            "silent_after": settings.WORKER_SILENT_AFTER_SECONDS,
            "grace": settings.RUN_NO_WORKER_GRACE_SECONDS,
        },
    )
