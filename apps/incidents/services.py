"""Opening and resolving incidents, each audited, each told (signals) after the commit."""

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit.constants import Via
from apps.audit.services import audit_record
from apps.catalog.constants import ActionKind
from apps.incidents.models import Incident, IncidentSource
from apps.incidents.signals import emit, incident_opened, incident_resolved
from apps.runs.constants import RunStatus
from apps.runs.models import Run
from apps.runs.selectors import deployments

# The runs that put a version on an environment, which an incident can be against.
CHANGES = (ActionKind.DEPLOY, ActionKind.ROLLBACK)
TITLE_MAX = 500


class IncidentRefused(Exception):
    def __init__(self, reason: str, *, status: int = 400, field: str | None = None):
        super().__init__(reason)
        self.reason, self.status, self.field = reason, status, field


def report_problem(*, run: Run, user, title: str, link: str = "", via=Via.WEB, request=None):
    """*Report a problem* on a successful deploy: an incident against it on its
    environment. Refused (400) on a run that changed nothing there."""
    title = (title or "").strip()
    if not title:
        raise IncidentRefused("Say what is wrong.", field="title")
    if run.check_mode or run.status != RunStatus.SUCCESSFUL or run.action_kind not in CHANGES:
        raise IncidentRefused(
            f"Run #{run.pk} put nothing on {run.environment} (only a successful deploy or "
            "rollback can have a problem reported against it).",
            field="run",
        )
    return _open(
        service=run.service, environment=run.environment, run=run, title=title, link=link,
        source=IncidentSource.REPORTED, actor=user, via=via, request=request,
    )  # fmt: skip


def alert_opened(*, service, environment, title: str, key: str, link: str = "", user=None):
    """A firing alert: an incident against what runs there now; the same alert firing
    again while it is open changes nothing (returns the open one)."""
    if key and (same := Incident.objects.filter(alert_key=key, resolved_at__isnull=True).first()):
        return same
    current = deployments.current_version(service=service, environment=environment)
    try:
        return _open(
            service=service, environment=environment, run=current, title=title, link=link,
            source=IncidentSource.ALERT, actor=user, via=Via.API, key=key,
        )  # fmt: skip
    except IntegrityError:  # the same alert, at once, from another request
        return Incident.objects.get(alert_key=key, resolved_at__isnull=True)


def _open(*, service, environment, run, title, link, source, actor, via, request=None, key=""):
    with transaction.atomic():
        incident = Incident.objects.create(
            service=service,
            environment=environment,
            run=run,
            version=run.version if run else "",
            title=title[:TITLE_MAX],
            link=link,
            source=source,
            alert_key=key,
            opened_by=actor if getattr(actor, "is_authenticated", False) else None,
            opened_by_name=actor.get_username() if actor else "monitoring",
        )
        audit_record(
            actor=actor,
            via=via,
            verb="incident.opened",
            obj=incident,
            service=service.slug,
            environment=environment.slug,
            details={
                "title": incident.title,
                "run": run.pk if run else None,
                "version": incident.version,
                "source": source,
                "link": link,
            },
            request=request,
        )
        transaction.on_commit(lambda: emit(incident_opened, incident=incident))
    return incident


def incident_resolve(*, incident: Incident, actor=None, note: str = "", run=None, via=Via.WEB,
                     request=None) -> Incident:  # fmt: skip
    """Resolve an open incident: by hand (a note), by a run, or by its alert."""
    with transaction.atomic():
        fresh = Incident.objects.select_for_update().get(pk=incident.pk)
        if not fresh.is_open:
            return fresh
        fresh.resolved_at = timezone.now()
        fresh.resolved_by_name = actor.get_username() if actor else "system"
        fresh.resolved_by_run = run
        fresh.resolution = note.strip() or (
            f"Resolved by run #{run.pk} ({run.action_label} {run.version})".strip() if run else ""
        )
        fresh.save(
            update_fields=["resolved_at", "resolved_by_name", "resolved_by_run", "resolution"]
        )
        audit_record(
            actor=actor,
            via=via if actor else Via.SYSTEM,
            verb="incident.resolved",
            obj=fresh,
            service=fresh.service.slug,
            environment=fresh.environment.slug,
            details={"resolution": fresh.resolution, "run": run.pk if run else None},
            request=request,
        )
        transaction.on_commit(lambda: emit(incident_resolved, incident=fresh))
    return fresh


def run_ended_resolve(sender, *, run: Run, **kwargs) -> None:
    """Receiver of `run_ended`: a successful deploy or rollback resolves the incidents
    open on its service and environment against what ran there before it."""
    if run.check_mode or run.status != RunStatus.SUCCESSFUL or run.action_kind not in CHANGES:
        return
    open_before = Incident.objects.filter(
        service_id=run.service_id,
        environment_id=run.environment_id,
        resolved_at__isnull=True,
        opened_at__lte=run.finished_at,
    ).exclude(run=run)
    for incident in open_before:
        incident_resolve(incident=incident, run=run, via=Via.SYSTEM)
