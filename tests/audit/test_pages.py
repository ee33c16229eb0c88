"""The review pages, the exports and the API: who may read, filters, keyset pages, rows."""

import csv
import io
import json
from datetime import UTC, datetime
from unittest import mock

import pytest
from django.http import StreamingHttpResponse
from rest_framework.test import APIClient

from apps.accounts.constants import Role
from apps.accounts.services import token_create
from apps.audit.chain import row_hash
from apps.audit.constants import READ_LOG, Outcome, Via
from apps.audit.exports import CSV_HEADER
from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_event_page
from tests.audit.conftest import record
from tests.clients import page_client
from tests.factories import UserFactory
from tests.runs.helpers import launch

pytestmark = pytest.mark.django_db


def sequences(response) -> list[int]:
    return [event.pk for event in response.context["page"].events]


@pytest.fixture
def sample(auditor_client):
    """A few rows of different kinds, oldest first (after the auditor's sign-in)."""
    with mock.patch(
        "apps.audit.services.timezone.now", return_value=datetime(2026, 1, 5, 10, tzinfo=UTC)
    ):
        old = record("run.requested", service="shop", environment="test", object_type="runs.run",
                     object_id="7", object_repr="Run #7 Deploy on test")  # fmt: skip
    return {
        "old": old,
        "refused": record("run.refused", service="shop", environment="production",
                          outcome=Outcome.REFUSED, details={"reason": "No grant on production."}),
        "other": record("action.update", service="blog", details={"changes": {"timeout": [1, 2]}}),
        "login": record("auth.login", actor=UserFactory(username="carol"), via="web"),
        "signed_in": AuditEvent.objects.get(verb="auth.login", actor_name="auditor"),
    }  # fmt: skip


# --- who may read -------------------------------------------------------------------
def test_it_sends_an_anonymous_visitor_to_sign_in(client):
    assert client.get("/audit/")["Location"].startswith("/accounts/login/")


def test_it_refuses_a_developer_pages_exports_and_api(dev):
    client = page_client(dev)

    assert client.get("/audit/").status_code == 403
    assert client.get("/audit/export/?format=csv").status_code == 403
    assert client.get(f"/audit/{record().pk}/").status_code == 403
    assert "Audit</a>" not in client.get("/runs/").content.decode()
    api = APIClient()
    api.force_authenticate(dev)
    assert api.get("/api/v1/audit/").status_code == 403


# Who reads the log: its permission (audit.read_log) follows the role, staff or not.
READERS = {
    "auditor": {"role": Role.AUDITOR},
    "staff auditor": {"role": Role.AUDITOR, "is_staff": True},
    "ops": {"role": Role.OPS},
    "staff ops": {"role": Role.OPS, "is_staff": True},
    "superuser": {"role": Role.DEVELOPER, "is_superuser": True, "is_staff": True},
}
NOT_READERS = {
    "developer": {"role": Role.DEVELOPER},
    "staff developer": {"role": Role.DEVELOPER, "is_staff": True},
    "inactive auditor": {"role": Role.AUDITOR, "is_active": False},
    "inactive ops": {"role": Role.OPS, "is_staff": True, "is_active": False},
    "inactive superuser": {"is_superuser": True, "is_staff": True, "is_active": False},
}


def _api(user) -> APIClient:
    api = APIClient()
    api.force_authenticate(user)
    return api


@pytest.mark.parametrize("who", READERS)
def test_readers_open_the_pages_the_export_and_the_api(who):
    user = UserFactory(username="reader", **READERS[who])
    row = record()
    client, api = page_client(user), _api(user)

    assert user.has_perm(READ_LOG)
    assert 'href="/audit/">Audit</a>' in client.get("/runs/").content.decode()
    for path in ("/audit/", f"/audit/{row.pk}/", "/audit/export/?format=csv"):
        assert client.get(path).status_code == 200, path
    assert api.get("/api/v1/audit/").status_code == 200
    assert api.get(f"/api/v1/audit/{row.pk}/").status_code == 200


@pytest.mark.parametrize("who", NOT_READERS)
def test_nobody_else_opens_them(who):
    user = UserFactory(username="other", **NOT_READERS[who])
    row = record()
    client, api = page_client(user), _api(user)

    assert not user.has_perm(READ_LOG)
    for path in ("/audit/", f"/audit/{row.pk}/", "/audit/export/?format=csv"):
        response = client.get(path)
        if user.is_active:
            assert response.status_code == 403, path
        else:  # a deactivated account is signed out
            assert response["Location"].startswith("/accounts/login/"), path
    assert api.get("/api/v1/audit/").status_code == 403
    assert api.get(f"/api/v1/audit/{row.pk}/").status_code == 403
    assert not AuditEvent.objects.filter(verb__in=["audit.search", "audit.view"]).exists()


def test_the_api_asks_an_anonymous_caller_for_a_token(db):
    response = APIClient().get("/api/v1/audit/")

    assert response.status_code == 401
    assert "results" not in response.json()


def test_an_auditors_read_token_reads_it_and_a_developers_does_not(auditor, dev):
    _, auditor_key = token_create(user=auditor, name="siem", scopes=["read"], acting_user=auditor,
                                  via=Via.CLI)  # fmt: skip
    _, dev_key = token_create(user=dev, name="ci", scopes=["read"], acting_user=dev, via=Via.CLI)
    api = APIClient()

    api.credentials(HTTP_AUTHORIZATION=f"Token {auditor_key}")
    assert api.get("/api/v1/audit/").status_code == 200
    api.credentials(HTTP_AUTHORIZATION=f"Token {dev_key}")
    assert api.get("/api/v1/audit/").status_code == 403


@pytest.mark.parametrize("who", ["auditor", "ops"])
def test_auditors_and_ops_read_it(request, who):
    client = page_client(request.getfixturevalue(who))

    response = client.get("/audit/")

    assert response.status_code == 200
    assert 'href="/audit/">Audit</a>' in response.content.decode()


# --- filters ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["login", "other", "refused", "old", "signed_in"]),
        ("actor=carol", ["login"]),
        ("verb=run.refused", ["refused"]),
        ("verb=run.*", ["refused", "old"]),
        ("service=shop", ["refused", "old"]),
        ("environment=production", ["refused"]),
        ("object_type=runs.run&object_id=7", ["old"]),
        ("outcome=refused", ["refused"]),
        ("via=web", ["login", "signed_in"]),
        ("since=2026-01-05&until=2026-01-05", ["old"]),
        ("until=2026-01-05T09:59", []),
        ("q=GRANT+ON+PROD", ["refused"]),
        ("q=100%25", []),
        ("service=shop&outcome=success", ["old"]),
    ],
)
def test_it_filters_newest_first(auditor_client, sample, query, expected):
    response = auditor_client.get(f"/audit/?{query}")

    assert response.status_code == 200
    assert sequences(response) == [sample[name].pk for name in expected]


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("since=yesterday", "since", "Enter a date (2026-01-31)"),
        ("since=2026-02-01&until=2026-01-01", "until", "Must be after the start"),
        ("verb=run*", "verb", "Only a whole family may be wildcarded"),
        ("outcome=maybe", "outcome", "Select a valid choice"),
        ("before=abc", "before", "Enter a whole number"),
        # Past PostgreSQL's bigint: no row can be there, and the database could not say.
        ("before=9223372036854775808", "before", "less than or equal to 9223372036854775807"),
        ("after=1" + "0" * 40, "after", "less than or equal to 9223372036854775807"),
        ("actor=" + "x" * 200, "actor", "at most 150 characters"),
        # The calendar's ends overflow once a day is added or a time zone applied.
        ("until=9999-12-31", "until", "Enter a year from 1900 to 9998"),
        ("since=0001-01-01T00:00%2B05:00", "since", "Enter a year from 1900 to 9998"),
    ],
)
def test_it_explains_bad_filters_beside_the_field(auditor_client, query, field, message):
    response = auditor_client.get(f"/audit/?{query}")

    assert response.status_code == 400
    assert message in response.content.decode()
    api = APIClient()
    api.force_authenticate(response.wsgi_request.user)
    answer = api.get(f"/api/v1/audit/?{query}")
    assert answer.status_code == 400
    assert any(message in m for m in answer.json()["errors"][field])


# --- keyset pages -------------------------------------------------------------------
def test_it_pages_by_sequence_number_newer_and_older(auditor_client):
    ids = [record(verb="test.page").pk for _ in range(120)]

    first = auditor_client.get("/audit/?verb=test.page")
    second = auditor_client.get(f"/audit/?verb=test.page&before={first.context['page'].older}")
    third = auditor_client.get(f"/audit/?verb=test.page&before={second.context['page'].older}")
    back = auditor_client.get(f"/audit/?verb=test.page&after={third.context['page'].newer}")

    assert sequences(first) == ids[::-1][:50]
    assert sequences(second) == ids[::-1][50:100]
    assert sequences(third) == ids[::-1][100:]
    assert third.context["page"].older is None
    assert sequences(back) == sequences(second)
    assert f"before={second.context['page'].older}" in second.content.decode()


def test_a_deep_page_is_found_by_its_cursor_not_by_an_offset(django_assert_max_num_queries):
    ids = [record(verb="test.deep").pk for _ in range(30)]

    with django_assert_max_num_queries(1) as queries:
        page = audit_event_page(filters={"verb": "test.deep"}, before=ids[10], size=5)

    assert [e.pk for e in page.events] == ids[5:10][::-1]
    sql = queries.captured_queries[0]["sql"].upper()
    assert "OFFSET" not in sql and '"ID" <' in sql.replace("AUDIT_AUDITEVENT.", "")


# --- a row --------------------------------------------------------------------------
def test_it_opens_a_row_with_its_changes_and_its_hash_checked(auditor_client, sample):
    response = auditor_client.get(f"/audit/{sample['other'].pk}/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "<code>timeout</code>" in page and "matches its content" in page
    assert auditor_client.get("/audit/999999/").status_code == 404


def test_a_run_row_links_to_the_run_with_its_inputs_and_playbook(auditor_client, dev, local_env):
    from tests.factories import ActionFactory

    action = ActionFactory(environments=[local_env], form=[{"name": "version", "type": "string"}])
    run = launch(user=dev, action=action, environment=local_env,
                     parameters={"version": "2.0.1"},)  # fmt: skip
    row = AuditEvent.objects.get(verb="run.requested")

    page = auditor_client.get(f"/audit/{row.pk}/").content.decode()

    assert f'href="/runs/{run.pk}/"' in page
    assert run.content_hash in page and "2.0.1" in page


# --- exports ------------------------------------------------------------------------
def _content(response) -> str:
    assert isinstance(response, StreamingHttpResponse)
    return b"".join(response.streaming_content).decode()


def test_it_exports_what_the_filter_shows_as_csv(auditor_client, sample):
    record("auth.login_failed", actor_name='=HYPERLINK("http://evil")', outcome=Outcome.REFUSED)

    response = auditor_client.get("/audit/export/?format=csv&service=shop")

    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    lines = list(csv.reader(io.StringIO(_content(response))))
    assert tuple(lines[0]) == CSV_HEADER
    assert [int(line[0]) for line in lines[1:]] == [sample["refused"].pk, sample["old"].pk]
    everything = _content(auditor_client.get("/audit/export/?format=csv&verb=auth.login_failed"))
    assert "'=HYPERLINK" in everything  # a spreadsheet shows it, never runs it


def test_it_exports_json_lines_whose_hashes_recompute(auditor_client, sample):
    response = auditor_client.get("/audit/export/?format=jsonl&service=shop")

    lines = [json.loads(line) for line in _content(response).splitlines()]
    assert [line["id"] for line in lines] == [sample["refused"].pk, sample["old"].pk]
    for line in lines:
        values = [line[name] for name in (
            "id", "created_at", "actor_id", "actor_name", "via", "ip", "user_agent", "verb",
            "object_type", "object_id", "object_repr", "service", "environment", "details",
            "outcome", "prev_hash")]  # fmt: skip
        assert row_hash(values) == line["hash"]


def test_it_refuses_an_unknown_export_format(auditor_client):
    response = auditor_client.get("/audit/export/?format=xlsx")

    assert response.status_code == 400
    assert "Export as csv or jsonl." in response.content.decode()


# --- reading is recorded ------------------------------------------------------------
def test_searches_views_and_exports_are_themselves_recorded(auditor_client, auditor, sample):
    auditor_client.get("/audit/?service=shop")
    auditor_client.get(f"/audit/{sample['old'].pk}/")
    _content(auditor_client.get("/audit/export/?format=jsonl&outcome=refused"))

    search, view, export = AuditEvent.objects.filter(verb__startswith="audit.").order_by("id")
    assert (search.verb, search.actor_name, search.details["filters"]) == (
        "audit.search", "auditor", {"service": "shop"}
    )  # fmt: skip
    assert (view.verb, view.object_id) == ("audit.view", str(sample["old"].pk))
    assert export.verb == "audit.export"
    assert export.details["filters"] == {"outcome": "refused"}
    assert export.details["format"] == "jsonl"


# --- the API ------------------------------------------------------------------------
def test_the_api_lists_with_the_same_filters_and_keyset_links(auditor, sample):
    api = APIClient()
    api.force_authenticate(auditor)
    extra = [record("run.requested", service="shop") for _ in range(3)]

    first = api.get("/api/v1/audit/?service=shop&limit=2").json()
    second = api.get(first["older"]).json()

    assert [r["sequence"] for r in first["results"]] == [extra[2].pk, extra[1].pk]
    assert [r["sequence"] for r in second["results"]] == [extra[0].pk, sample["refused"].pk]
    assert first["newer"] is None and "before=" in first["older"]
    old = api.get(f"/api/v1/audit/{sample['old'].pk}/").json()
    assert old["run"] == "/api/v1/runs/7/" and old["hash"] == sample["old"].hash
    assert api.get("/api/v1/audit/999999/").status_code == 404
    assert AuditEvent.objects.filter(verb="audit.search", via="api").count() == 2


def test_the_export_explains_a_date_out_of_range(auditor_client):
    response = auditor_client.get("/audit/export/?format=csv&until=9999-12-31")

    assert response.status_code == 400
