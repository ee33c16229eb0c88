from apps.audit.constants import Via
from apps.runs import services
from apps.runs.models import Run
from tests.conftest import wait_for
from tests.factories import ActionFactory, EnvironmentFactory, UserFactory


def make_run(**fields) -> Run:
    """A Run row as run_launch would write it, without launching anything."""
    action = fields.pop("action", None) or ActionFactory()
    environment = fields.pop("environment", None) or EnvironmentFactory()
    user = fields.pop("requested_by", None) or UserFactory()
    defaults = dict(
        **services.run_snapshot(action=action, environment=environment),
        requested_by=user,
        requested_by_name=user.username,
    )
    return Run.objects.create(**{**defaults, **fields})


def launch(user, action, environment, parameters=None, **kwargs) -> Run:
    """Launch through the service, as the API does."""
    return services.run_launch(
        user=user,
        service=action.service,
        action=action,
        environment=environment,
        parameters=parameters or {},
        from_api=True,
        via=Via.API,
        **kwargs,
    )


def wait_final(run: Run, timeout: float = 120) -> Run:
    """Wait until the worker has ended the run; returns it refreshed."""

    def done():
        run.refresh_from_db()
        return run.is_final

    wait_for(done, timeout=timeout, message=f"run {run.pk} stayed {run.status}")
    return run
