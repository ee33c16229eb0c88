"""Build provenance: the commit, ref, repository, pipeline and job a launch deploys, shown
wherever the run is, filtered on, and carried by a promotion or a rollback."""

import json

import pytest

from apps.audit.models import AuditEvent
from apps.runs.models import Run
from tests.clients import api_client, page_client
from tests.runs.helpers import queue_held

SHA = "3f9c2ab7e41d0c5b8a6f1e2d3c4b5a6978695a4b"
SOURCE = {
    "commit": SHA.upper(),
    "committed_at": "2026-03-01T12:00:00Z",
    "ref": "refs/tags/v1.2.3",
    "repository": "https://git.example.com/web/hello-web",
    "pipeline_url": "https://ci.example.com/web/hello-web/pipelines/881",
    "job_url": "https://ci.example.com/web/hello-web/jobs/4410",
}


def _launch(client, env="test", version="1.2.3", **extra):
    data = {
        "service": "hello-web",
        "action": "deploy",
        "environment": env,
        "parameters": {"version": version},
        **extra,
    }
    with queue_held():
        return client.post("/api/v1/runs/", json.dumps(data), content_type="application/json")


def test_a_launch_carries_its_build_into_the_runs_json(demo):
    client = api_client(demo.dev)

    created = _launch(client, source=SOURCE)

    assert created.status_code == 201, created.content
    expected = {**SOURCE, "commit": SHA}  # kept in lower case
    assert created.json()["source"] == expected
    assert client.get(f"/api/v1/runs/{created.json()['id']}/").json()["source"] == expected
    run = Run.objects.get()
    assert run.source_commit == SHA
    assert run.source_committed_at.isoformat() == "2026-03-01T12:00:00+00:00"


def test_a_launch_without_a_build_says_none(demo):
    created = _launch(api_client(demo.dev))

    assert created.status_code == 201
    assert created.json()["source"] is None


def test_the_audit_row_keeps_the_build(demo):
    _launch(api_client(demo.dev), source={**SOURCE, "job_url": ""})

    details = AuditEvent.objects.get(verb="run.requested").details
    assert details["source"] == {
        "commit": SHA,
        "committed_at": "2026-03-01T12:00:00+00:00",
        "ref": "refs/tags/v1.2.3",
        "repository": SOURCE["repository"],
        "pipeline_url": SOURCE["pipeline_url"],
    }


@pytest.mark.parametrize(
    ("source", "field", "message"),
    [
        ({"commit": "not-a-sha"}, "commit", "hexadecimal"),
        ({"commit": "3f9c2"}, "commit", "at least 7"),
        ({"commit": "a" * 65}, "commit", "no more than 64"),
        ({"ref": "main"}, "commit", "required"),
        ({"commit": SHA, "repository": "ftp://git.example.com/x"}, "repository", "http"),
        ({"commit": SHA, "pipeline_url": "javascript:alert(1)"}, "pipeline_url", "http"),
        ({"commit": SHA, "job_url": "https://ci.example.com/" + "j" * 500}, "job_url", "500"),
        ({"commit": SHA, "ref": "r" * 256}, "ref", "255"),
        ({"commit": SHA, "ref": "main\x1b[31m"}, "ref", "control"),
        ({"commit": SHA, "committed_at": "yesterday"}, "committed_at", "format"),
        ({"commit": SHA, "sha": SHA}, "sha", "Unknown field"),
    ],
)
def test_a_bad_build_is_refused_with_what_is_wrong(demo, source, field, message):
    response = _launch(api_client(demo.dev), source=source)

    assert response.status_code == 400
    errors = response.json()["errors"]["source"][field]
    assert any(message in error for error in errors), errors
    assert not Run.objects.exists()


def test_the_run_page_shows_the_build(demo):
    run_id = _launch(api_client(demo.dev), source=SOURCE).json()["id"]

    html = page_client(demo.dev).get(f"/runs/{run_id}/").content.decode()

    assert f'<code title="{SHA}">{SHA[:12]}</code>' in html
    assert "refs/tags/v1.2.3" in html
    assert f'href="{SOURCE["pipeline_url"]}"' in html
    assert f'href="{SOURCE["job_url"]}"' in html
    assert f'href="{SOURCE["repository"]}"' in html
    assert 'datetime="2026-03-01T12:00:00' in html


def test_the_service_pages_history_shows_the_commit(demo):
    _launch(api_client(demo.dev), source=SOURCE)

    html = page_client(demo.dev).get("/services/hello-web/").content.decode()

    assert f'<code title="{SHA}">{SHA[:10]}</code>' in html
    assert f'href="{SOURCE["pipeline_url"]}"' in html


def test_the_runs_list_filters_by_commit(demo, history):
    client = api_client(demo.dev)
    wanted = _launch(client, source=SOURCE).json()["id"]
    Run.objects.filter(pk=wanted).update(status="successful")
    other = _launch(client, version="1.2.4", source={"commit": "b" * 40}).json()["id"]

    listed = client.get(f"/api/v1/runs/?commit={SHA[:7].upper()}").json()

    assert [r["id"] for r in listed["results"]] == [wanted]
    assert listed["count"] == 1
    html = page_client(demo.dev).get(f"/runs/?commit={SHA[:10]}").content.decode()
    assert f'data-run="{wanted}"' in html
    assert f'data-run="{other}"' not in html


def _verified_on_test(demo, history, source):
    """1.2.3 deployed on test by a run carrying `source`, then verified there."""
    deploy = history.deploy("test", "1.2.3")
    Run.objects.filter(pk=deploy.pk).update(
        source_commit=source["commit"].lower(),
        source_ref=source["ref"],
        source_pipeline_url=source["pipeline_url"],
    )
    history.verify("test", "1.2.3")
    return deploy


def test_a_promotion_carries_the_build_of_the_run_it_promotes(demo, history):
    _verified_on_test(demo, history, SOURCE)

    with queue_held():
        response = api_client(demo.dev).post(
            "/api/v1/services/hello-web/environments/qa/promote/",
            "{}",
            content_type="application/json",
        )

    assert response.status_code == 201, response.content
    source = response.json()["source"]
    assert source["commit"] == SHA
    assert source["ref"] == "refs/tags/v1.2.3"
    assert source["pipeline_url"] == SOURCE["pipeline_url"]


def test_a_promotion_from_the_service_page_carries_it_too(demo, history):
    _verified_on_test(demo, history, SOURCE)
    client = page_client(demo.dev)
    form = client.get("/services/hello-web/environments/qa/promote/")
    seen = form.context["seen"]

    with queue_held():
        response = client.post(
            "/services/hello-web/environments/qa/promote/", {"seen": seen, "version": "1.2.3"}
        )

    assert response.status_code == 302, response.content[:500]
    promoted = Run.objects.get(environment=demo.envs["qa"])
    assert promoted.promoted_from == demo.envs["test"]
    assert promoted.source_commit == SHA


def test_a_rollback_carries_the_build_of_the_version_it_puts_back(demo, history):
    old = history.deploy("test", "1.0.0")
    Run.objects.filter(pk=old.pk).update(source_commit="a" * 40, source_ref="v1.0.0")
    current = history.deploy("test", "1.1.0")
    Run.objects.filter(pk=current.pk).update(source_commit="c" * 40, source_ref="v1.1.0")

    with queue_held():
        response = api_client(demo.dev).post(
            "/api/v1/services/hello-web/environments/test/rollback/",
            json.dumps({"reason": "1.1.0 breaks the sign-in"}),
            content_type="application/json",
        )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["version"] == "1.0.0"
    assert body["rollback_of"] == current.pk
    assert body["source"]["commit"] == "a" * 40
    assert body["source"]["ref"] == "v1.0.0"
