from apps.runs.models import Run
from tests.factories import ActionFactory, EnvironmentFactory, UserFactory


def make_run(**fields) -> Run:
    """A Run row as run_launch would write it, without launching anything."""
    action = fields.pop("action", None) or ActionFactory()
    environment = fields.pop("environment", None) or EnvironmentFactory()
    user = fields.pop("requested_by", None) or UserFactory()
    version = action.playbook_version
    defaults = dict(
        service=action.service,
        action=action,
        environment=environment,
        action_slug=action.slug,
        action_label=action.label,
        action_kind=action.kind,
        playbook_version=version,
        playbook_commit=version.commit,
        playbook_path=version.path,
        content_hash=version.content_hash,
        form=action.form,
        inventory=environment.inventory,
        timeout=action.timeout,
        queue=environment.queue,
        requested_by=user,
        requested_by_name=user.username,
    )
    return Run.objects.create(**{**defaults, **fields})
