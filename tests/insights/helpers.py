from datetime import timedelta

from django.utils import timezone

from apps.insights.changes import run_ended_refresh
from apps.runs.constants import RunStatus
from apps.runs.models import Run
from tests.factories import RunFactory

START = timezone.now() - timedelta(days=1)


class History:
    """Runs written straight into the database, each a minute after the one before, as
    if the worker had run them: what the promotion rule and the pages read. The insights'
    change rows follow each, as they follow a run's end."""

    def __init__(self, demo):
        self.demo = demo
        self.clock = START

    def run(self, action, env: str, version: str = "", *, status=RunStatus.SUCCESSFUL, **fields):
        self.clock += timedelta(minutes=1)
        parameters = {action.version_field: version} if action.version_field and version else {}
        run = RunFactory(
            action=action,
            environment=self.demo.envs[env],
            requested_by=fields.pop("requested_by", self.demo.dev),
            parameters=parameters,
            version=version,
            status=status,
            created_at=self.clock,
            started_at=self.clock,
            finished_at=self.clock + timedelta(seconds=20),
            **fields,
        )
        run_ended_refresh(sender=Run, run=run)
        return run

    def deploy(self, env, version, **fields):
        return self.run(self.demo.deploy, env, version, **fields)

    def verify(self, env, version, **fields):
        return self.run(self.demo.smoke, env, version, **fields)

    def shipped(self, env, version):
        """Deployed, then verified."""
        deploy = self.deploy(env, version)
        self.verify(env, version)
        return deploy
