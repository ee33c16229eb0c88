"""Incidents: *Report a problem* on a deploy, resolved by a later deploy or rollback there
or by hand; alerts from monitoring (Alertmanager's payload, or a small JSON) opening and
resolving them against what runs there; each audited, shown on the run and service pages,
and told to the notification rules that ask."""

import pytest

from apps.accounts.constants import TokenScope
from apps.audit.models import AuditEvent
from apps.incidents.models import Incident, IncidentSource
from apps.notifications.constants import Event
from apps.notifications.models import Delivery
from apps.runs.constants import RunStatus
from tests.clients import api_client, page_client
from tests.notifications.conftest import webhook

pytestmark = pytest.mark.django_db(transaction=True)

ALERTMANAGER = {
    "version": "4",
    "status": "firing",
    "receiver": "pushbutton",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "HighErrorRate", "service": "hello-web", "environment": "test"},
            "annotations": {"summary": "5xx above 5% for 10 minutes"},
            "startsAt": "2026-12-06T10:00:00Z",
            "generatorURL": "http://prometheus.example.com/graph?g0.expr=rate",
            "fingerprint": "4f3a2b1c",
        }
    ],
}


def _report(user, run, **fields):
    data = {"title": "The header is broken", **fields}
    return page_client(user).post(f"/runs/{run.pk}/incidents/", data, follow=True)


def test_a_problem_reported_on_a_deploy_opens_an_incident_shown_where_it_matters(demo, history):
    deploy = history.deploy("test", "2.1.0")

    page = _report(demo.dev, deploy, link="https://tickets.example.com/T-12").content.decode()

    incident = Incident.objects.get()
    assert (incident.run, incident.version, incident.source) == (
        deploy, "2.1.0", IncidentSource.REPORTED,
    )  # fmt: skip
    assert "Incident opened." in page and "The header is broken" in page
    audit = AuditEvent.objects.get(verb="incident.opened")
    assert audit.details["run"] == deploy.pk and audit.actor_name == "dev"
    service_page = page_client(demo.dev).get("/services/hello-web/").content.decode()
    assert "Open incidents" in service_page and "The header is broken" in service_page


def test_only_a_successful_change_can_have_a_problem_reported(demo, history):
    failed = history.deploy("test", "2.1.0", status=RunStatus.FAILED)

    page = _report(demo.dev, failed).content.decode()

    assert "only a successful deploy or rollback" in page
    assert not Incident.objects.exists()
    assert _report(demo.dev, history.deploy("test", "2.1.1"), title=" ").status_code == 200
    assert not Incident.objects.exists()


def test_an_auditor_reads_but_does_not_report(demo, history):
    deploy = history.deploy("test", "2.1.0")

    assert _report(demo.auditor, deploy).status_code == 403
    assert not Incident.objects.exists()


def test_a_later_successful_deploy_resolves_it_a_failed_or_dry_one_does_not(demo, history):
    from apps.runs.services import run_end
    from tests.factories import RunFactory

    deploy = history.deploy("test", "2.1.0")
    _report(demo.dev, deploy)

    def ended(status, **fields):
        run = RunFactory(action=demo.deploy, environment=demo.envs["test"], version="2.1.1",
                         status=RunStatus.RUNNING, requested_by=demo.dev, **fields)  # fmt: skip
        return run_end(run=run, status=status, rc=0)

    ended(RunStatus.FAILED)
    ended(RunStatus.SUCCESSFUL, check_mode=True)
    assert Incident.objects.get().is_open
    fix = ended(RunStatus.SUCCESSFUL)

    incident = Incident.objects.get()
    assert not incident.is_open
    assert incident.resolved_by_run == fix
    assert incident.resolution == f"Resolved by run #{fix.pk} (Deploy 2.1.1)"
    assert AuditEvent.objects.filter(verb="incident.resolved").count() == 1


def test_resolved_by_hand_with_a_note(demo, history):
    _report(demo.dev, history.deploy("test", "2.1.0"))
    incident = Incident.objects.get()
    url = f"/incidents/{incident.pk}/resolve/"
    client = page_client(demo.dev)

    empty = client.post(url, {"note": "", "next": "/services/hello-web/"}, follow=True)
    assert "Say how it was resolved." in empty.content.decode()
    client.post(url, {"note": "CDN cache purged", "next": "/services/hello-web/"})

    incident.refresh_from_db()
    assert (incident.is_open, incident.resolution, incident.resolved_by_name) == (
        False, "CDN cache purged", "dev",
    )  # fmt: skip


def _alerts(user, body, scopes=(TokenScope.ALERTS,)):
    client = api_client(user, name="alertmanager", scopes=list(scopes))
    return client.post("/api/v1/alerts/", body, content_type="application/json")


def test_an_alertmanager_alert_opens_an_incident_against_what_runs_there_then_resolves(
    demo, history
):
    history.deploy("test", "2.0.0")
    current = history.deploy("test", "2.1.0")

    opened = _alerts(demo.ops, ALERTMANAGER)
    again = _alerts(demo.ops, ALERTMANAGER)  # Alertmanager repeats a firing alert

    assert opened.status_code == 200, opened.content
    incident = Incident.objects.get()
    assert opened.json()["results"] == again.json()["results"] == [{"opened": incident.pk}]
    assert (incident.run, incident.version, incident.title) == (
        current, "2.1.0", "5xx above 5% for 10 minutes",
    )  # fmt: skip
    assert incident.link.startswith("http://prometheus.example.com/")
    resolved = {**ALERTMANAGER, "status": "resolved",
                "alerts": [{**ALERTMANAGER["alerts"][0], "status": "resolved"}]}  # fmt: skip
    assert _alerts(demo.ops, resolved).json()["results"] == [{"resolved": incident.pk}]
    incident.refresh_from_db()
    assert not incident.is_open and incident.resolution == "The alert resolved."


def test_the_small_alert_form(demo, history):
    history.deploy("test", "2.1.0")
    body = {"status": "firing", "service": "hello-web", "environment": "test",
            "title": "Checkout fails", "id": "synthetic-7"}  # fmt: skip

    assert _alerts(demo.ops, body).status_code == 200
    assert Incident.objects.get().title == "Checkout fails"
    _alerts(demo.ops, {**body, "status": "resolved"})
    assert not Incident.objects.get().is_open


@pytest.mark.parametrize(
    ("body", "scopes", "code", "says"),
    [
        (ALERTMANAGER, (TokenScope.READ, TokenScope.RUN), 403, "alerts scope"),
        ({"status": "exploding"}, (TokenScope.ALERTS,), 400, "status"),
        ({"alerts": []}, (TokenScope.ALERTS,), 400, "No alert in it."),
    ],
)
def test_alerts_need_their_scope_and_a_payload_that_reads(demo, body, scopes, code, says):
    response = _alerts(demo.ops, body, scopes=scopes)

    assert response.status_code == code
    assert says in response.content.decode()
    assert not Incident.objects.exists()


def test_an_alert_for_a_service_unknown_or_hidden_is_ignored_saying_so(demo):
    body = {"status": "firing", "service": "nope", "environment": "test", "title": "x"}

    response = _alerts(demo.ops, body)

    assert response.json()["results"] == [
        {"ignored": "No service 'nope' on environment 'test' you may see."}
    ]
    assert not Incident.objects.exists()


def test_incidents_are_told_to_the_rules_that_ask(demo, history):
    webhook("http://127.0.0.1:9/hook", events=[Event.INCIDENT_OPENED, Event.INCIDENT_RESOLVED])
    _report(demo.dev, history.deploy("test", "2.1.0"))

    delivery = Delivery.objects.get()
    assert delivery.event == Event.INCIDENT_OPENED
    assert delivery.subject == "Incident opened: hello-web on Test: The header is broken"
