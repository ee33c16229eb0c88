"""What hangs the notifications on the portal's events: a run started or ended
(apps/runs/signals.py), a refusal or a lock written to the audit log
(apps/audit/hooks.py). Connected in apps.py; each only writes deliveries, which tasks
send after the commit: nothing here waits for a receiver."""

from apps.catalog.models import Service
from apps.environments.models import Environment
from apps.notifications import messages
from apps.notifications.constants import AUDITED, ENDED, FAILURES, Event
from apps.notifications.services import deliveries_create
from apps.runs.constants import RunStatus
from apps.runs.models import Run


def _tell(event: str, run: Run) -> None:
    deliveries_create(
        event,
        messages.run_message(event, run),
        service=run.service,
        environment=run.environment,
        run=run,
        check=run.check_mode,
    )


def run_started_notify(sender, *, run: Run, **kwargs) -> None:
    _tell(Event.RUN_STARTED, run)


def fixed(run: Run) -> bool:
    """Whether `run` is the first success after a failure of the same action there (the
    last run before it that ended one way or the other failed; dry runs aside)."""
    if run.status != RunStatus.SUCCESSFUL or run.check_mode:
        return False
    before = (
        Run.objects.filter(
            service_id=run.service_id,
            environment_id=run.environment_id,
            action_slug=run.action_slug,
            check_mode=False,
            pk__lt=run.pk,
            status__in=[RunStatus.SUCCESSFUL, *FAILURES],
        )
        .order_by("-pk")
        .values_list("status", flat=True)
        .first()
    )
    return before in FAILURES


def run_ended_notify(sender, *, run: Run, **kwargs) -> None:
    if event := ENDED.get(run.status):
        _tell(event, run)
    if fixed(run):
        _tell(Event.RUN_FIXED, run)


def audit_notify(sender, *, event, **kwargs) -> None:
    """A refusal, a lock taken or released: told from its row of the audit log."""
    told = AUDITED.get(event.verb)
    if told is None:
        return
    service = Service.objects.filter(slug=event.service).first() if event.service else None
    environment = (
        Environment.objects.filter(slug=event.environment).first() if event.environment else None
    )
    deliveries_create(
        told, messages.audit_message(told, event), service=service, environment=environment
    )


def incident_notify(sender, *, incident, **kwargs) -> None:
    """An incident opened or resolved."""
    event = Event.INCIDENT_OPENED if incident.is_open else Event.INCIDENT_RESOLVED
    deliveries_create(
        event,
        messages.incident_message(event, incident),
        service=incident.service,
        environment=incident.environment,
        run=incident.run,
    )
