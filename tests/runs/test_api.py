"""The REST API as CI uses it: token auth, catalog, launch, status, events, cancel."""

import json

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts.models import ApiToken
from apps.accounts.services import token_create
from apps.audit.constants import Outcome
from apps.audit.models import AuditEvent
from apps.runs.constants import RunStatus
from apps.runs.models import Run, RunEvent
from tests.clients import api_client, api_launch
from tests.factories import ActionFactory, EnvironmentFactory, PlaybookVersionFactory, UserFactory

SECRET = "hunter2-do-not-show"


def _post(client, path, data):
    body = data if isinstance(data, str | bytes) else json.dumps(data)
    return client.post(path, body, content_type="application/json")


@pytest.fixture
def api(demo):
    return api_client(demo.dev)


# --- authentication --------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/api/v1/catalog/"), ("post", "/api/v1/runs/"), ("get", "/api/v1/runs/1/")],
)
def test_it_refuses_requests_without_a_token(demo, method, path):
    response = getattr(Client(), method)(path)

    assert response.status_code in (401, 403)
    assert response["Content-Type"] == "application/json"
    assert "credentials were not provided" in response.json()["detail"]
    assert not Run.objects.exists()


def test_it_answers_401_with_a_token_challenge(demo):
    response = Client().get("/api/v1/catalog/")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_it_refuses_a_bad_token(demo):
    client = Client(headers={"Authorization": "Token pb_not-a-real-key"})

    response = client.get("/api/v1/catalog/")

    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid or revoked token."


@pytest.mark.parametrize("header", ["Token", "Token two words", "Token \u00e9t\u00e9"])
def test_it_refuses_a_malformed_token_header(demo, header):
    response = Client(headers={"Authorization": header}).post("/api/v1/runs/")

    assert response.status_code == 401
    assert response.json()["detail"]
    assert not Run.objects.exists()


def test_it_refuses_a_revoked_token(demo):
    token, key = token_create(user=demo.dev, name="ci", acting_user=None, via="cli")
    client = Client(headers={"Authorization": f"Token {key}"})
    assert client.get("/api/v1/catalog/").status_code == 200

    token.revoked_at = timezone.now()
    token.save()

    response = client.get("/api/v1/catalog/")
    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid or revoked token."


def test_it_refuses_the_token_of_an_inactive_user(demo):
    client = api_client(demo.dev)
    demo.dev.is_active = False
    demo.dev.save()

    assert client.get("/api/v1/catalog/").status_code == 401


def test_it_notes_when_a_token_was_used(demo):
    token, key = token_create(user=demo.dev, name="ci", acting_user=None, via="cli")
    assert token.last_used_at is None

    Client(headers={"Authorization": f"Token {key}"}).get("/api/v1/catalog/")

    token.refresh_from_db()
    assert token.last_used_at is not None


# --- catalog ---------------------------------------------------------------
def test_it_lists_the_catalog(api, demo):
    response = api.get("/api/v1/catalog/")

    assert response.status_code == 200
    (service,) = response.json()
    assert service["slug"] == "hello-web"
    actions = {a["slug"]: a for a in service["actions"]}
    assert list(actions) == ["deploy", "rollback", "smoke-test"]
    deploy = actions["deploy"]
    assert deploy["label"] == "Deploy"
    assert deploy["kind"] == "deploy"
    assert actions["rollback"]["kind"] == "rollback"
    assert sorted(deploy["environments"]) == ["production", "qa", "test"]
    (field,) = deploy["form"]
    assert field["name"] == "version"
    assert field["type"] == "string"
    assert field["required"] is True
    assert field["pattern"] == r"^\d+\.\d+\.\d+$"
    assert deploy["playbook"]["commit"] == demo.deploy.playbook_version.commit
    assert deploy["playbook"]["content_hash"] == demo.deploy.playbook_version.content_hash


def test_it_shows_an_auditor_no_environment_to_run_on(demo):
    response = api_client(demo.auditor).get("/api/v1/catalog/")

    assert response.status_code == 200
    for action in response.json()[0]["actions"]:
        assert action["environments"] == []


# --- launch ----------------------------------------------------------------
def test_it_launches_a_run(api, demo):
    response = api_launch(api, version="1.2.3")

    assert response.status_code == 201, response.content
    body = response.json()
    run = Run.objects.get()
    assert body["id"] == run.pk
    assert body["status"] == "queued"
    assert body["service"] == "hello-web"
    assert body["action"] == "deploy"
    assert body["environment"] == "test"
    assert body["parameters"] == {"version": "1.2.3"}
    assert body["version"] == "1.2.3"
    assert body["check"] is False
    assert body["requested_by"] == "dev"
    assert body["created_at"]
    assert body["started_at"] is None
    assert body["finished_at"] is None
    assert body["rc"] is None
    version = demo.deploy.playbook_version
    assert body["playbook"] == {
        "path": "deploy.yml",
        "commit": version.commit,
        "content_hash": version.content_hash,
    }
    assert body["url"] == f"/runs/{run.pk}/"
    audit = AuditEvent.objects.get(verb="run.requested")
    assert audit.via == "api"
    assert audit.object_id == str(run.pk)


def test_a_launch_reads_its_service_once(api, demo):
    with CaptureQueriesContext(connection) as queries:
        response = api_launch(api, version="1.2.3")

    assert response.status_code == 201, response.content
    # Once: joined to the action the launch reads with it, never on its own as well.
    reads = [
        q["sql"]
        for q in queries
        if ' FROM "catalog_service" WHERE ' in q["sql"]
        or (q["sql"].startswith('SELECT "catalog_action"') and 'JOIN "catalog_service"' in q["sql"])
    ]
    assert len(reads) == 1, reads


def test_it_launches_a_dry_run(api, demo):
    response = api_launch(api, version="1.2.3", check=True)

    assert response.status_code == 201
    assert response.json()["check"] is True
    assert Run.objects.get().check_mode is True


@pytest.mark.parametrize("field", ["service", "action", "environment"])
def test_it_names_the_unknown_slug(api, demo, field):
    response = api_launch(api, version="1.2.3", **{field: "nope"})

    assert response.status_code == 400
    assert response.json()["errors"][field] == [f"No {field} 'nope'."]
    assert not Run.objects.exists()


def test_it_needs_service_action_and_environment(api, demo):
    response = _post(api, "/api/v1/runs/", {"parameters": {"version": "1.2.3"}})

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {"service", "action", "environment"}
    assert all(errors[name] == ["This field is required."] for name in errors)


def test_it_refuses_a_version_that_does_not_fit_the_form(api, demo):
    response = api_launch(api, parameters={"version": "latest"})

    assert response.status_code == 400
    body = response.json()
    assert body["errors"] == {
        "parameters": {"version": [r"Must match the pattern ^\d+\.\d+\.\d+$."]}
    }
    assert not Run.objects.exists()
    refusal = AuditEvent.objects.get(verb="run.refused")
    assert refusal.via == "api"
    assert refusal.details["errors"] == {"version": [r"Must match the pattern ^\d+\.\d+\.\d+$."]}


def test_it_refuses_a_missing_required_parameter(api, demo):
    response = api_launch(api, parameters={})

    assert response.status_code == 400
    assert response.json()["errors"]["parameters"] == {"version": ["This field is required."]}


def test_it_refuses_an_unknown_parameter(api, demo):
    response = api_launch(api, parameters={"version": "1.2.3", "colour": "red"})

    assert response.status_code == 400
    assert response.json()["errors"]["parameters"] == {"colour": ["Unknown parameter."]}
    assert not Run.objects.exists()


@pytest.mark.parametrize("parameters", [["1.2.3"], "version=1.2.3", 7])
def test_it_refuses_parameters_that_are_not_an_object(api, demo, parameters):
    response = api_launch(api, parameters=parameters)

    assert response.status_code == 400
    errors = response.json()["errors"]["parameters"]
    assert errors == {"parameters": ["Must be an object of field names to values."]}
    assert not Run.objects.exists()


@pytest.mark.parametrize("body", ['{"service": "hello-web", ', "not json", "[]", "null"])
def test_it_answers_400_to_a_malformed_body(api, demo, body):
    response = _post(api, "/api/v1/runs/", body)

    assert response.status_code == 400
    assert response.json()["detail"]
    assert not Run.objects.exists()


def test_it_refuses_an_auditor_with_a_reason(demo):
    response = api_launch(api_client(demo.auditor), version="1.2.3")

    assert response.status_code == 403
    assert response.json()["detail"] == "Auditors can read everything but run nothing."
    assert not Run.objects.exists()
    refusal = AuditEvent.objects.get(verb="run.refused")
    assert refusal.actor_name == "auditor"
    assert refusal.outcome == Outcome.REFUSED
    assert refusal.via == "api"
    assert refusal.service == "hello-web"
    assert refusal.environment == "test"


def test_it_refuses_an_environment_the_action_is_not_offered_on(api, demo):
    EnvironmentFactory(slug="staging")

    response = api_launch(api, "staging", "1.2.3")

    assert response.status_code == 403
    assert "not offered on Staging" in response.json()["detail"]
    assert not Run.objects.exists()


def test_it_answers_409_for_an_unapproved_playbook_version(api, demo):
    ActionFactory(
        service=demo.service,
        slug="migrate",
        playbook_version=PlaybookVersionFactory(approved_at=None),
        environments=[demo.envs["test"]],
    )

    response = api_launch(api, action="migrate")

    assert response.status_code == 409
    assert "not approved" in response.json()["detail"]
    assert not Run.objects.exists()


# --- a run -----------------------------------------------------------------
def test_it_shows_a_run_with_secrets_masked(api, demo):
    ActionFactory(
        service=demo.service,
        slug="migrate",
        form=[
            {"name": "version", "type": "string"},
            {"name": "db_password", "type": "secret", "required": True},
        ],
        version_field="version",
        environments=[demo.envs["test"]],
    )
    created = api_launch(
        api, action="migrate", parameters={"version": "2.0.0", "db_password": SECRET}
    )
    assert created.status_code == 201, created.content
    assert SECRET not in created.content.decode()

    response = api.get(f"/api/v1/runs/{created.json()['id']}/")

    assert response.status_code == 200
    body = response.json()
    assert body["parameters"] == {"version": "2.0.0", "db_password": "••••"}
    assert SECRET not in response.content.decode()
    for field in ("id", "status", "service", "action", "environment", "requested_by"):
        assert body[field] == created.json()[field]
    for field in ("created_at", "started_at", "finished_at", "rc", "host_summary", "playbook"):
        assert field in body


def test_it_shows_how_a_run_ended(api, demo):
    run = Run.objects.get(pk=api_launch(api, version="1.2.3").json()["id"])
    Run.objects.filter(pk=run.pk).update(
        status=RunStatus.SUCCESSFUL,
        started_at=timezone.now(),
        finished_at=timezone.now(),
        rc=0,
        host_summary={"localhost": {"ok": 5, "changed": 3, "failed": 0}},
    )

    body = api.get(f"/api/v1/runs/{run.pk}/").json()

    assert body["status"] == "successful"
    assert body["rc"] == 0
    assert body["host_summary"] == {"localhost": {"ok": 5, "changed": 3, "failed": 0}}
    assert body["started_at"] and body["finished_at"]


def test_it_answers_404_for_a_missing_run(api, demo):
    response = api.get("/api/v1/runs/999999/")

    assert response.status_code == 404
    assert response.json() == {"detail": "No such run."}


def test_it_returns_the_events_after_a_counter(api, demo):
    run_id = api_launch(api, version="1.2.3").json()["id"]
    RunEvent.objects.bulk_create(
        [
            RunEvent(
                run_id=run_id,
                counter=n,
                event="runner_on_ok",
                stdout=f"line {n}",
                start_line=n - 1,
                end_line=n,
            )
            for n in (5, 1, 4, 2, 3)
        ]
    )

    response = api.get(f"/api/v1/runs/{run_id}/events/?after=2")

    assert response.status_code == 200
    body = response.json()
    assert body["run"] == run_id
    assert body["status"] == "queued"
    assert [e["counter"] for e in body["events"]] == [3, 4, 5]
    assert [e["stdout"] for e in body["events"]] == ["line 3", "line 4", "line 5"]
    everything = api.get(f"/api/v1/runs/{run_id}/events/").json()["events"]
    assert [e["counter"] for e in everything] == [1, 2, 3, 4, 5]
    assert api.get(f"/api/v1/runs/{run_id}/events/?after=5").json()["events"] == []
    limited = api.get(f"/api/v1/runs/{run_id}/events/?after=1&limit=2").json()["events"]
    assert [e["counter"] for e in limited] == [2, 3]


@pytest.mark.parametrize("query", ["after=abc", "after=", "after=1.5", "limit=many"])
def test_it_answers_400_to_a_bad_counter(api, demo, query):
    run_id = api_launch(api, version="1.2.3").json()["id"]

    response = api.get(f"/api/v1/runs/{run_id}/events/?{query}")

    assert response.status_code == 400
    assert response.json()["detail"]


def test_it_answers_404_for_events_of_a_missing_run(api, demo):
    assert api.get("/api/v1/runs/999999/events/").status_code == 404


# --- cancel ----------------------------------------------------------------
def test_it_cancels_a_queued_run(api, demo):
    run_id = api_launch(api, version="1.2.3").json()["id"]

    response = api.post(f"/api/v1/runs/{run_id}/cancel/")

    assert response.status_code == 202
    assert response.json()["status"] == "canceled"
    run = Run.objects.get(pk=run_id)
    assert run.status == RunStatus.CANCELED
    assert run.canceled_by_name == "dev"
    assert AuditEvent.objects.get(verb="run.canceled").via == "api"


def test_it_answers_409_to_a_second_cancel(api, demo):
    run_id = api_launch(api, version="1.2.3").json()["id"]
    assert api.post(f"/api/v1/runs/{run_id}/cancel/").status_code == 202

    response = api.post(f"/api/v1/runs/{run_id}/cancel/")

    assert response.status_code == 409
    assert "already ended" in response.json()["detail"]


def test_it_refuses_a_cancel_by_another_developer(api, demo):
    run_id = api_launch(api, version="1.2.3").json()["id"]
    other = api_client(demo.tester)  # sees the run, did not start it

    response = other.post(f"/api/v1/runs/{run_id}/cancel/")

    assert response.status_code == 403
    assert response.json()["detail"] == "Only the person who started a run, or Ops, can cancel it."
    assert Run.objects.get(pk=run_id).status == RunStatus.QUEUED


def test_a_cancel_of_a_run_one_may_not_see_reads_as_no_such_run(api, demo):
    run_id = api_launch(api, version="1.2.3").json()["id"]
    stranger = api_client(UserFactory(username="dev2"))

    hidden = stranger.post(f"/api/v1/runs/{run_id}/cancel/")
    missing = stranger.post("/api/v1/runs/987654321/cancel/")

    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json() == {"detail": "No such run."}
    assert Run.objects.get(pk=run_id).status == RunStatus.QUEUED


def test_it_lets_ops_cancel_anyones_run(api, demo):
    run_id = api_launch(api, version="1.2.3").json()["id"]

    response = api_client(demo.ops).post(f"/api/v1/runs/{run_id}/cancel/")

    assert response.status_code == 202
    assert Run.objects.get(pk=run_id).canceled_by_name == "ops"


def test_it_answers_404_to_cancel_a_missing_run(api, demo):
    assert api.post("/api/v1/runs/999999/cancel/").status_code == 404


# --- schema ----------------------------------------------------------------
def test_it_serves_the_openapi_document(api, demo):
    response = api.get("/api/v1/schema/?format=json")

    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "Pushbutton API"
    for path in (
        "/api/v1/catalog/",
        "/api/v1/runs/",
        "/api/v1/runs/{run_id}/",
        "/api/v1/runs/{run_id}/events/",
        "/api/v1/runs/{run_id}/cancel/",
    ):
        assert path in schema["paths"], path
    paths, components = schema["paths"], schema["components"]["schemas"]
    launch = paths["/api/v1/runs/"]["post"]
    assert set(launch["responses"]) >= {"201", "400", "403", "409"}
    assert {"service", "action", "environment", "parameters"} <= set(
        components["Launch"]["properties"]
    )
    catalog = paths["/api/v1/catalog/"]["get"]["responses"]["200"]
    assert catalog["content"]["application/json"]["schema"]["type"] == "array"
    events = paths["/api/v1/runs/{run_id}/events/"]["get"]["responses"]["200"]
    page = events["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(components[page]["properties"]) == {"run", "status", "events"}
    assert "202" in paths["/api/v1/runs/{run_id}/cancel/"]["post"]["responses"]


def test_it_serves_the_schema_as_yaml_by_default(api, demo):
    response = api.get("/api/v1/schema/")

    assert response.status_code == 200
    assert response.content.startswith(b"openapi: 3.")


def test_it_keeps_only_the_hash_of_a_token(demo):
    token, key = token_create(user=demo.dev, name="ci", acting_user=None, via="cli")

    stored = json.dumps(list(ApiToken.objects.filter(pk=token.pk).values()), default=str)
    assert key not in stored
    assert token.key_hash == ApiToken.hash_key(key)
