"""The audit table reads well: objects by their names, verb, service and environment as
choices, dates as date inputs, a bad date said beside its field while the other filters
still show their rows, times to the second, and the last verification on the page."""

import re
from datetime import UTC, datetime
from unittest import mock

import pytest

from apps.audit.models import AuditVerification
from tests.audit.conftest import record

pytestmark = pytest.mark.django_db


@pytest.fixture
def rows(auditor_client):
    with mock.patch(
        "apps.audit.services.timezone.now",
        return_value=datetime(2026, 1, 5, 10, 11, 12, 345678, tzinfo=UTC),
    ):
        old_run = record("run.requested", service="hello-web", environment="qa",
                         object_type="runs.run", object_id="7",
                         object_repr="Run #7 Deploy on 1")  # fmt: skip
    shop = record("action.update", service="shop", environment="production")
    return {"old_run": old_run, "shop": shop}


def _body(response) -> str:
    return response.content.decode()


def test_a_bad_date_is_said_beside_its_field_and_the_rows_still_show(auditor_client, rows):
    response = auditor_client.get("/audit/", {"since": "yesterday", "service": "shop"})

    assert response.status_code == 400
    html = _body(response)
    assert re.search(r'<span class="error" id="since-error">Enter a date \(2026-01-31\)', html)
    assert f'data-verb="{rows["shop"].verb}"' in html  # the service filter still applies
    assert 'data-verb="run.requested"' not in html
    assert "Showing the rows the other filters select" in html


def test_verb_service_and_environment_are_choices_and_dates_date_inputs(auditor_client, rows):
    html = _body(auditor_client.get("/audit/", {"service": "shop"}))

    assert re.search(r'<select name="verb" id="id_verb">.*<option>run\.\*</option>', html, re.S)
    services = re.search(r'<select name="service" id="id_service">.*?</select>', html, re.S).group(
        0
    )
    assert "<option>hello-web</option>" in services
    assert "<option selected>shop</option>" in services
    environments = re.search(
        r'<select name="environment" id="id_environment">.*?</select>', html, re.S
    ).group(0)
    assert "<option>production</option>" in environments and "<option>qa</option>" in environments
    assert '<input type="date" name="since" id="id_since"' in html
    assert '<input type="date" name="until" id="id_until"' in html


def test_rows_name_their_objects_and_read_to_the_second(auditor_client, rows):
    html = _body(auditor_client.get("/audit/", {"verb": "run.requested"}))

    assert "Run #7: Deploy hello-web on qa" in html
    assert "Deploy on 1" not in html
    assert "2026-01-05 10:11:12 UTC</time>" in html
    assert "10:11:12.345678" not in html


def test_the_page_verifies_the_chain_with_a_button_not_a_command(auditor_client, rows):
    html = _body(auditor_client.get("/audit/"))
    assert "manage.py" not in html
    assert "Verify the chain now" in html

    response = auditor_client.post("/audit/verify/")

    assert response.status_code == 302
    assert AuditVerification.objects.get().ok
    html = _body(auditor_client.get("/audit/"))
    assert 'data-chain="intact"' in html
    assert "Chain intact" in html


def test_the_scope_choices_are_each_service_and_environment_the_log_names_once():
    """Read value after value from the columns' indexes (not the whole log): each one
    once, sorted, the empty ones (sign-ins, catalog changes) left out."""
    from apps.audit.selectors import audit_scope_choices

    for service, environment in [
        ("shop", "qa"), ("", ""), ("hello-web", "production"), ("shop", "qa"),
        ("a-b", ""), ("shop", "test"), ("", "qa"),
    ]:  # fmt: skip
        record("run.requested", service=service, environment=environment)

    assert audit_scope_choices() == (["a-b", "hello-web", "shop"], ["production", "qa", "test"])
