"""Keeps the insights' change rows (apps/insights/models.Change) in step with the runs.

A change's facts depend on runs around it on the same service and environment: its own
rollback, a failed verification of its version, an incident against it (failed); the
next change (recovery); the change before it (whether it recovers a failed one). So an
event at a moment works the pair's changes out again from the change just before that
moment on: a few rows, by the (service, environment, finished_at) index."""

import logging
from datetime import datetime

from django.db import transaction
from django.db.models import (
    BooleanField,
    DateTimeField,
    Exists,
    ExpressionWrapper,
    F,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Coalesce

from apps.catalog.constants import ActionKind
from apps.incidents.models import Incident
from apps.insights.models import Change, ChangeKind
from apps.runs.constants import RunStatus
from apps.runs.models import Run

log = logging.getLogger(__name__)

CHANGE_KINDS = (ActionKind.DEPLOY, ActionKind.ROLLBACK)
FAILED_VERIFICATION = (RunStatus.FAILED, RunStatus.TIMED_OUT)


def _pair_changes(service_id: int, environment_id: int) -> QuerySet[Run]:
    """The successful deploys and rollbacks of the service on the environment."""
    return Run.objects.filter(
        service_id=service_id,
        environment_id=environment_id,
        status=RunStatus.SUCCESSFUL,
        check_mode=False,
        action_kind__in=CHANGE_KINDS,
    )


def _failed_q() -> Q:
    """A deploy (a Run row, in the outer query) that needed remediation."""
    rolled_back = Run.objects.filter(rollback_of=OuterRef("pk"))
    verification_failed = Run.objects.filter(
        service=OuterRef("service"),
        environment=OuterRef("environment"),
        action_kind=ActionKind.VERIFY,
        check_mode=False,
        status__in=FAILED_VERIFICATION,
        version=OuterRef("version"),
        created_at__gte=OuterRef("finished_at"),
    )
    incident = Incident.objects.filter(run=OuterRef("pk"))
    return Q(Exists(rolled_back)) | Q(Exists(verification_failed)) | Q(Exists(incident))


def _with_facts(runs: QuerySet[Run]) -> QuerySet[Run]:
    first_anywhere = (
        Run.objects.filter(
            service=OuterRef("service"),
            version=OuterRef("version"),
            status=RunStatus.SUCCESSFUL,
            check_mode=False,
            action_kind=ActionKind.DEPLOY,
        )
        .order_by()
        .values("service")
        .annotate(first=Min("created_at"))
        .values("first")[:1]
    )
    next_change = (
        Run.objects.filter(
            service=OuterRef("service"),
            environment=OuterRef("environment"),
            status=RunStatus.SUCCESSFUL,
            check_mode=False,
            action_kind__in=CHANGE_KINDS,
            finished_at__gt=OuterRef("finished_at"),
        )
        .order_by("finished_at")
        .values("finished_at")[:1]
    )
    return runs.annotate(
        needed_remediation=ExpressionWrapper(_failed_q(), output_field=BooleanField()),
        lead_start=Coalesce(
            F("source_committed_at"), Subquery(first_anywhere, output_field=DateTimeField())
        ),
        next_change_at=Subquery(next_change, output_field=DateTimeField()),
    ).order_by("finished_at", "pk")


def _change(run: Run, *, after_failed_deploy: bool) -> Change:
    deploy = run.action_kind == ActionKind.DEPLOY and run.rollback_of_id is None
    failed = deploy and run.needed_remediation
    lead = None
    if deploy and run.version and run.lead_start is not None:
        lead = run.finished_at - run.lead_start
    recovery = None
    if failed and run.next_change_at is not None:
        recovery = run.next_change_at - run.finished_at
    return Change(
        run_id=run.pk,
        service_id=run.service_id,
        environment_id=run.environment_id,
        finished_at=run.finished_at,
        kind=ChangeKind.DEPLOY if deploy else ChangeKind.ROLLBACK,
        failed=failed,
        lead=lead,
        from_commit=deploy and run.source_committed_at is not None,
        recovery=recovery,
        recovers=deploy and after_failed_deploy,
    )


def refresh(service_id: int, environment_id: int, *, since: datetime | None = None) -> int:
    """Works out the pair's changes again from the one just before `since` (all of them
    without); returns how many rows were written."""
    runs = _pair_changes(service_id, environment_id)
    start = since
    if since is not None:
        start = (
            runs.filter(finished_at__lt=since)
            .order_by("-finished_at")
            .values_list("finished_at", flat=True)
            .first()
        ) or since
    rows = _with_facts(runs if start is None else runs.filter(finished_at__gte=start))
    before = None
    if start is not None:
        before = _with_facts(runs.filter(finished_at__lt=start)).reverse().first()
    after_failed_deploy = before is not None and _change(before, after_failed_deploy=False).failed
    changes = []
    for run in rows:
        change = _change(run, after_failed_deploy=after_failed_deploy)
        changes.append(change)
        after_failed_deploy = change.failed
    with transaction.atomic():
        stale = Change.objects.filter(service_id=service_id, environment_id=environment_id)
        if start is not None:
            stale = stale.filter(finished_at__gte=start)
        stale.exclude(run_id__in=[c.run_id for c in changes]).delete()
        Change.objects.bulk_create(
            changes,
            batch_size=1000,
            update_conflicts=True,
            unique_fields=["run"],
            update_fields=["finished_at", "kind", "failed", "lead", "from_commit",
                           "recovery", "recovers"],
        )  # fmt: skip
    return len(changes)


def rebuild_all() -> int:
    """Every pair's changes worked out again (after a bulk import, or to check)."""
    pairs = (
        Run.objects.filter(action_kind__in=CHANGE_KINDS, status=RunStatus.SUCCESSFUL)
        .order_by()
        .values_list("service_id", "environment_id")
        .distinct()
    )
    return sum(refresh(service_id, environment_id) for service_id, environment_id in pairs)


def run_ended_refresh(sender, *, run: Run, **kwargs) -> None:
    """A change that ended changes its pair's facts from it on; a failed verification makes
    the deploys of its version before it failed."""
    if run.check_mode or run.finished_at is None:
        return
    if run.status == RunStatus.SUCCESSFUL and run.action_kind in CHANGE_KINDS:
        since = run.finished_at
        if run.rollback_of_id is not None:
            rolled_back = (
                Run.objects.filter(pk=run.rollback_of_id)
                .values_list("finished_at", flat=True)
                .first()
            )
            since = min(since, rolled_back or since)
        refresh(run.service_id, run.environment_id, since=since)
    elif run.action_kind == ActionKind.VERIFY and run.status in FAILED_VERIFICATION:
        earliest = (
            _pair_changes(run.service_id, run.environment_id)
            .filter(version=run.version, finished_at__lte=run.created_at)
            .order_by("finished_at")
            .values_list("finished_at", flat=True)
            .first()
        )
        if earliest is not None:
            refresh(run.service_id, run.environment_id, since=earliest)


def incident_opened_refresh(sender, *, incident, **kwargs) -> None:
    if incident.run_id is None:
        return
    run = (
        Run.objects.filter(pk=incident.run_id)
        .only("service_id", "environment_id", "finished_at")
        .first()
    )
    if run is not None and run.finished_at is not None:
        refresh(run.service_id, run.environment_id, since=run.finished_at)
