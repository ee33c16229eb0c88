"""The four keys and rework, checked against a history computed by hand: five deploys to
production in the last 30 days (one outside), a failed verification, a rollback, an
incident, provenance on some."""

from datetime import UTC, datetime, timedelta

import pytest

from apps.incidents.models import Incident, IncidentSource
from apps.insights.changes import incident_opened_refresh, rebuild_all, run_ended_refresh
from apps.insights.dora import figures
from apps.insights.models import Change
from apps.runs.constants import RunStatus
from apps.runs.models import Run
from tests.clients import api_client, page_client
from tests.factories import ActionFactory, RunFactory, ServiceFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
DAY = timedelta(days=1)


@pytest.fixture
def production(demo):
    prod = demo.envs["production"]

    def run(action, version, finished, *, env=prod, status=RunStatus.SUCCESSFUL, **fields):
        return RunFactory(action=action, environment=env, version=version, status=status,
                          requested_by=demo.dev, created_at=finished - timedelta(minutes=5),
                          started_at=finished - timedelta(minutes=4), finished_at=finished,
                          **fields)  # fmt: skip

    deploy, smoke = demo.deploy, demo.smoke
    run(deploy, "0.9.0", NOW - 40 * DAY)  # outside the window
    d1 = run(deploy, "1.0.0", NOW - 20 * DAY, source_committed_at=NOW - 20 * DAY - 2 * H)
    d2 = run(deploy, "1.1.0", NOW - 15 * DAY, source_committed_at=NOW - 15 * DAY - 10 * H)
    run(smoke, "1.1.0", NOW - 15 * DAY + timedelta(minutes=10), status=RunStatus.FAILED)
    # 1.1.1 has no provenance: its lead time starts at its first deploy anywhere (test).
    first = run(deploy, "1.1.1", NOW - 15 * DAY, env=demo.envs["test"])
    first.created_at = NOW - 15 * DAY + H - DAY
    first.save()
    d3 = run(deploy, "1.1.1", NOW - 15 * DAY + H)
    d4 = run(deploy, "1.2.0", NOW - 5 * DAY, source_committed_at=NOW - 5 * DAY - 3 * H)
    run(deploy, "1.1.1", NOW - 5 * DAY + timedelta(minutes=30), rollback_of=d4, reason="bad")
    d5 = run(deploy, "1.3.0", NOW - 2 * DAY, source_committed_at=NOW - 2 * DAY - 30 * H)
    Incident.objects.create(service=demo.service, environment=prod, run=d5, version="1.3.0",
                            title="Checkout fails", source=IncidentSource.REPORTED,
                            opened_by_name="dev")  # fmt: skip
    run(deploy, "1.4.0", NOW - 3 * DAY, status=RunStatus.FAILED)  # not a deploy that happened
    # Another service's deploys neither recover nor count for hello-web's.
    other = ActionFactory(
        service=ServiceFactory(slug="other"),
        slug="deploy",
        playbook_version=deploy.playbook_version,
        environments=[prod],
    )
    run(other, "9.0.0", NOW - 15 * DAY + timedelta(minutes=5))
    run(other, "9.0.1", NOW - 5 * DAY + timedelta(minutes=10))
    run(deploy, "1.4.0", NOW - 1 * DAY, check_mode=True)  # a dry run changes nothing
    rebuild_all()  # the runs were written straight into the database
    return {"env": prod, "deploys": [d1, d2, d3, d4, d5]}


def _facts():
    return sorted(Change.objects.values_list(
        "run_id", "kind", "failed", "lead", "from_commit", "recovery", "recovers"
    ))  # fmt: skip


def test_the_change_rows_follow_each_event_as_a_rebuild_works_them_out(demo, production):
    """Replayed in the order it happened (each run's end, the incident), the history leaves
    the same change rows as working them out from all the runs at once."""
    rebuilt = _facts()
    Change.objects.all().delete()
    runs = list(Run.objects.order_by("finished_at", "pk"))
    incident = Incident.objects.get()

    for run in runs:
        run_ended_refresh(sender=Run, run=run)
        if run == incident.run:
            incident_opened_refresh(sender=Incident, incident=incident)

    assert _facts() == rebuilt
    d4 = production["deploys"][3]
    assert Change.objects.get(run=d4).failed  # rolled back
    assert Change.objects.get(run=d4).recovery == timedelta(minutes=30)


def test_the_keys_match_the_hand_computed_figures(demo, production):
    got = figures(environment=production["env"], services=[demo.service], days=30, now=NOW)

    assert got.deploys == 5
    assert round(got.per_day, 4) == round(5 / 30, 4)
    assert got.frequency_band == "High"  # between once a week and once a day
    # Lead times 2 h, 3 h, 10 h, 24 h, 30 h: median 10 h, p90 30 h (nearest rank).
    assert (got.lead_time_median, got.lead_time_p90) == (10 * H, 30 * H)
    assert got.lead_time_band == "Elite"
    assert got.lead_time_from_commits == 4
    # Failed: 1.1.0 (its verification), 1.2.0 (rolled back), 1.3.0 (an incident).
    assert (got.failed, got.change_failure_rate) == (3, 3 / 5)
    assert got.change_failure_band == "Low"
    # Recovered: 1.2.0 in 30 min (the rollback), 1.1.0 in 1 h (1.1.1); 1.3.0 not yet.
    assert (got.recovery_median, got.recovery_p90) == (30 * timedelta(minutes=1), H)
    assert got.recovery_band == "Elite"
    # Unplanned: the rollback, and 1.1.1 which recovered 1.1.0; of 6 changes.
    assert (got.unplanned, got.rework_rate) == (2, 2 / 6)
    assert sum(week["deploys"] for week in got.weeks) == 5
    assert sum(week["failed"] for week in got.weeks) == 3


def test_a_window_with_nothing_deployed_has_no_rates(demo, production):
    got = figures(environment=production["env"], services=[demo.service], days=7,
                  now=NOW - 60 * DAY)  # fmt: skip

    assert got.deploys == 0
    assert got.change_failure_rate is None and got.rework_rate is None
    assert got.lead_time_median is None and got.frequency_band == "Low"


@pytest.fixture
def today(production, monkeypatch):
    """The pages read the figures as of now: now is NOW."""
    monkeypatch.setattr("apps.insights.dora.timezone.now", lambda: NOW)


def test_the_page_shows_each_key_with_its_band_and_definition(demo, production, today):
    page = page_client(demo.dev).get("/insights/?environment=production&days=30&service=hello-web")

    text = page.content.decode()
    assert page.status_code == 200
    assert "5 deploys: 0.17 a day, 1.2 a week" in text
    assert "median 10 h 0 min, 90th percentile 1 d 6 h" in text
    assert "60% (3 of 5)" in text
    assert "The share of deploys that needed remediation" in text
    assert 'id="dora-weeks-data"' in text


def test_the_api_gives_the_same_figures_as_json_and_csv(demo, production, today):
    client = api_client(demo.dev)

    data = client.get("/api/v1/insights/?service=hello-web").json()
    csv_text = client.get("/api/v1/insights/?service=hello-web&output=csv").content.decode()

    assert data["environment"] == "production" and data["days"] == 30
    assert data["deployment_frequency"]["deploys"] == 5
    assert data["lead_time"]["median_seconds"] == 36000.0
    assert data["change_failure_rate"] == {"failed": 3, "rate": 0.6, "band": "Low"}
    assert data["recovery_time"]["p90_seconds"] == 3600.0
    assert "change_failure_rate,0.6,,,Low" in csv_text


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("days=5", "days", "Choose 7, 30, 90 days."),
        ("days=abc", "days", "Choose 7, 30, 90 days."),
        ("service=nope", "service", "No service 'nope' you may see."),
        ("environment=mars", "environment", "No environment 'mars' you may see."),
        ("team=nope", "team", "No team 'nope'."),
    ],
)
def test_a_bad_choice_is_a_400_naming_it(demo, query, field, message):
    api = api_client(demo.dev).get(f"/api/v1/insights/?{query}")
    page = page_client(demo.dev).get(f"/insights/?{query}")

    assert api.status_code == 400 and api.json()["errors"] == {field: [message]}
    assert page.status_code == 400 and message.replace("'", "&#x27;") in page.content.decode()
