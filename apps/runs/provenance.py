"""Build provenance: the commit, ref, repository, pipeline and job a launch says it deploys.

A launch through the API may carry it (`source`, validated by the API's serializer); a
promotion, a rollback and a run again carry that of the run they repeat. It is shown on
the run, its JSON, the service page's history and the audit row, and the runs list
filters by commit. Lead time is measured from its commit time.
"""

from datetime import datetime

from django.db.models import Q

from apps.catalog.constants import ActionKind
from apps.runs.constants import RunStatus
from apps.runs.models import Run

FIELDS = ("commit", "committed_at", "ref", "repository", "pipeline_url", "job_url")


def source_run_fields(source: dict | None) -> dict:
    """The Run columns that hold `source` (all blank without one)."""
    source = source or {}
    return {
        "source_commit": (source.get("commit") or "").lower(),
        "source_committed_at": source.get("committed_at"),
        "source_ref": source.get("ref") or "",
        "source_repository": source.get("repository") or "",
        "source_pipeline_url": source.get("pipeline_url") or "",
        "source_job_url": source.get("job_url") or "",
    }


def source_details(run: Run) -> dict | None:
    """The run's provenance as an audit row keeps it: the fields given, as text."""
    source = run.source
    if source is None:
        return None
    details = {}
    for name in FIELDS:
        value = source.get(name)
        if isinstance(value, datetime):
            value = value.isoformat()
        if value:
            details[name] = value
    return details


def repeated_source(*, service, environment, version: str) -> dict | None:
    """The provenance of the run that put `version` on `environment` (its latest successful
    deploy or rollback there that carried one): what a promotion from there, or a rollback
    to it, deploys again."""
    if not version:
        return None
    run = (
        Run.objects.filter(
            service=service,
            environment=environment,
            version=version,
            status=RunStatus.SUCCESSFUL,
            check_mode=False,
            action_kind__in=(ActionKind.DEPLOY, ActionKind.ROLLBACK),
        )
        .exclude(Q(source_commit=""))
        .order_by("-finished_at", "-id")
        .first()
    )
    return run.source if run else None
