"""`manage.py create_token USER`: a key printed once, only its hash kept."""

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from apps.accounts.models import ApiToken
from apps.audit.models import AuditEvent


def _create_token(*args) -> str:
    out = io.StringIO()
    call_command("create_token", *args, stdout=out)
    return out.getvalue().strip()


def test_it_prints_a_key_that_authenticates(dev):
    key = _create_token("dev")

    response = Client(headers={"Authorization": f"Token {key}"}).get("/api/v1/catalog/")

    assert response.status_code == 200
    assert response.json() == []


def test_it_stores_only_the_hash_of_the_key(dev):
    key = _create_token("dev", "--name", "ci-pipeline")

    token = ApiToken.objects.get()
    assert token.user == dev
    assert token.name == "ci-pipeline"
    assert token.key_hash == ApiToken.hash_key(key)
    assert key.startswith("pb_") and key[3:11] == token.prefix
    row = json.dumps(list(ApiToken.objects.values()), default=str)
    assert key not in row
    assert key not in json.dumps(list(AuditEvent.objects.values()), default=str)


def test_it_records_the_new_token_in_the_audit_log(dev):
    _create_token("dev")

    row = AuditEvent.objects.get(verb="token.create")
    assert row.via == "cli"
    assert row.details["user"] == "dev"


def test_it_prints_a_new_key_each_time(dev):
    first, second = _create_token("dev"), _create_token("dev")

    assert first != second
    assert ApiToken.objects.count() == 2


def test_it_acts_as_the_tokens_user(demo):
    launch = {
        "service": "hello-web",
        "action": "deploy",
        "environment": "test",
        "parameters": {"version": "1.2.3"},
    }

    def post(username):
        client = Client(headers={"Authorization": f"Token {_create_token(username)}"})
        return client.post("/api/v1/runs/", launch, content_type="application/json")

    assert post("dev").json()["requested_by"] == "dev"
    assert post("auditor").status_code == 403


def test_it_refuses_an_unknown_user(db):
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command("create_token", "nobody", stdout=io.StringIO())

    assert not ApiToken.objects.exists()
