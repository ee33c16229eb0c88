from unittest import mock

from apps.runs import services
from apps.runs.models import Run
from tests.conftest import wait_for


def queue_held():
    """While it lasts, nothing reaches the broker: launched runs stay queued (patch of
    the one place the services send tasks from)."""
    return mock.patch("apps.runs.services.lifecycle.task_send")


def launch(user, action, environment, parameters=None, *, service=None, **options) -> Run:
    """Launch through the one launch path, as the API does unless `options` (fields of
    LaunchRequest) say otherwise; `service` is the action's unless given."""
    return services.run_launch(
        services.LaunchRequest(
            user=user,
            service=service or action.service,
            action=action,
            environment=environment,
            parameters={} if parameters is None else parameters,
            **options,
        )
    )


def wait_final(run: Run, timeout: float = 120) -> Run:
    """Wait until the worker has ended the run; returns it refreshed."""

    def done():
        run.refresh_from_db()
        return run.is_final

    wait_for(done, timeout=timeout, message=f"run {run.pk} stayed {run.status}")
    return run
