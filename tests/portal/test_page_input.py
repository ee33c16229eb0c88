"""What the pages answer to query strings and form posts they cannot read: NUL bytes,
bytes that are not UTF-8, huge values. A 400 with the reason, never a 500 (PostgreSQL
refuses NUL in any text it is given, a filter's included)."""

import pytest
from django.test import Client

from apps.accounts.models import Role
from tests.factories import UserFactory

RUN_LIST = ("service", "environment", "status", "user", "from", "to", "tz", "run", "page")
AUDIT = ("actor", "verb", "service", "environment", "object_type", "object_id", "q", "since")
LOG = (
    "log/search/?q=",
    "log/?after=",
    "log/window/?line=",
    "log/later/?after=",
    "log/earlier/?before=",
)
BAD = {"NUL": "a%00b", "not UTF-8": "a%ff%fe", "an encoded surrogate": "%ed%a0%80"}


@pytest.fixture
def member(api_world) -> Client:
    client = Client()
    client.force_login(api_world.user)
    return client


@pytest.fixture
def auditor(db) -> Client:
    client = Client()
    client.force_login(UserFactory(username="audrey", role=Role.AUDITOR, is_staff=True))
    return client


def _refused(response, word: str) -> None:
    assert response.status_code == 400, (response.status_code, response.content[:300])
    assert word in response.content.decode().lower()


@pytest.mark.parametrize("value", BAD.values(), ids=BAD.keys())
def test_run_list_filters_it_cannot_read_are_a_400(member, value):
    for name in RUN_LIST:
        _refused(member.get(f"/runs/?{name}={value}"), "query string")


@pytest.mark.parametrize("value", BAD.values(), ids=BAD.keys())
def test_audit_filters_it_cannot_read_are_a_400(auditor, value):
    for name in AUDIT:
        _refused(auditor.get(f"/audit/?{name}={value}"), "query string")
        _refused(auditor.get(f"/audit/export/?{name}={value}"), "query string")


@pytest.mark.parametrize("value", BAD.values(), ids=BAD.keys())
def test_log_queries_it_cannot_read_are_a_400(api_world, member, value):
    for query in LOG:
        _refused(member.get(f"/runs/{api_world.run.pk}/{query}{value}"), "query string")


def test_a_query_string_of_9000_characters_is_a_400(api_world, member):
    _refused(member.get(f"/runs/{api_world.run.pk}/log/search/?q={'x' * 9000}"), "too long")
    _refused(member.get(f"/runs/?user={'x' * 9000}"), "too long")


def test_huge_numbers_in_the_log_queries_are_a_400(api_world, member):
    run = api_world.run.pk
    for query in LOG[2:]:
        response = member.get(f"/runs/{run}/{query}{'9' * 30}")
        assert response.status_code == 400, (query, response.status_code)
    assert member.get(f"/runs/?run={'9' * 30}").status_code == 400


def test_a_form_post_with_a_nul_is_a_400(api_world, member):
    url = f"/environments/{api_world.environment.slug}/lock/"
    _refused(
        member.post(
            url,
            "reason=a%00b&minutes=5",
            content_type="application/x-www-form-urlencoded",
        ),
        "nul",
    )
    _refused(member.post(url, {"reason": "a\x00b", "minutes": "5"}), "nul")  # multipart
    _refused(
        member.post(url, b"reason=%ff&minutes=5", content_type="application/x-www-form-urlencoded"),
        "utf-8",
    )


def test_good_queries_still_work(api_world, member, auditor):
    run = api_world.run.pk
    assert member.get("/runs/?service=hello-web&user=member&from=2026-01-01").status_code == 200
    assert auditor.get("/audit/?q=na%C3%AFve&actor=member").status_code == 200
    assert member.get(f"/runs/{run}/log/search/?q=%E2%9C%93").status_code == 200
    assert member.get(f"/runs/{run}/log/window/?line=tail").status_code == 200


def test_a_browser_reads_the_reason_as_text_and_a_script_as_json(member):
    browser = member.get("/runs/?service=a%00b", headers={"Accept": "text/html,*/*;q=0.8"})
    script = member.get("/runs/?service=a%00b", headers={"Accept": "*/*"})

    assert browser.status_code == script.status_code == 400
    assert browser["Content-Type"] == "text/plain; charset=utf-8"
    assert browser.content.decode() == "The query string holds a NUL character (%00)."
    assert script.json() == {"detail": "The query string holds a NUL character (%00)."}


def test_a_day_past_the_calendar_is_a_400_beside_its_field(member):
    # The run list's last day, plus one, would be past the calendar's last.
    response = member.get("/runs/?to=9999-12-31")

    assert response.status_code == 400
    assert "Enter a year from 1900 to 9998." in response.content.decode()
