"""`manage.py create_token USER`: a key printed once, only its hash kept."""

import io
import json
import re
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from apps.accounts.models import ApiToken
from apps.accounts.services import token_create, token_revoke
from apps.audit.constants import Outcome
from apps.audit.models import AuditEvent
from apps.runs.models import Run
from tests.clients import api_client, api_launch, page_client
from tests.factories import EnvironmentFactory, UserFactory


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
    def post(username):
        client = Client(headers={"Authorization": f"Token {_create_token(username)}"})
        return api_launch(client, "test", "1.2.3")

    assert post("dev").json()["requested_by"] == "dev"
    assert post("auditor").status_code == 403


def test_it_refuses_an_unknown_user(db):
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command("create_token", "nobody", stdout=io.StringIO())

    assert not ApiToken.objects.exists()


def test_it_takes_scopes_environments_and_an_expiry(world):
    key = _create_token("member", "--scopes", "read", "--environment", "test", "--expires-in", "30")

    token = ApiToken.objects.get(key_hash=ApiToken.hash_key(key))
    assert token.scopes == ["read"]
    assert [env.slug for env in token.environments.all()] == ["test"]
    assert 29 <= (token.expires_at - timezone.now()).days <= 30


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--environment", "moon"], "No environment 'moon'"),
        (["--scopes", "write"], "scopes: Choose read, run, alerts, or several."),
        (["--expires-in", "0"], "--expires-in takes a number of days"),
    ],
)
def test_it_refuses_bad_options_with_a_reason(world, args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("create_token", "member", *args, stdout=io.StringIO())

    assert not ApiToken.objects.exists()


# --- what a token may do ---------------------------------------------------------------
def _refusals(verb):
    return AuditEvent.objects.filter(verb=verb, outcome=Outcome.REFUSED)


def test_an_expired_token_is_refused_and_recorded(world):
    token, key = token_create(user=world.users["member"], name="old", acting_user=None, via="cli")
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(minutes=1))

    response = Client(headers={"Authorization": f"Token {key}"}).get("/api/v1/catalog/")

    assert response.status_code == 401
    assert response.json()["detail"].startswith("This token expired at ")
    row = _refusals("token.refused").get()
    assert row.actor_name == "member"
    assert row.details["prefix"] == token.prefix


def test_a_revoked_token_is_refused_and_recorded(world):
    client = api_client(world.users["member"])
    token = ApiToken.objects.get()
    token_revoke(token=token, acting_user=world.users["member"], via="web")

    response = api_launch(client)

    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid or revoked token."
    assert _refusals("token.refused").count() == 1
    assert (
        not Run.objects.exclude(pk__in=[r.pk for r in world.runs.values()])
        .filter(service=world.hello, check_mode=False)
        .exists()
    )


def test_a_read_token_reads_but_neither_launches_nor_cancels(world):
    client = api_client(world.users["member"], scopes=["read"])

    assert client.get("/api/v1/catalog/").status_code == 200
    assert client.get(f"/api/v1/runs/{world.runs['test'].pk}/").status_code == 200
    launched = api_launch(client)
    canceled = client.post(f"/api/v1/runs/{world.runs['test'].pk}/cancel/")

    assert launched.status_code == 403
    assert launched.json()["detail"] == "This API token has no run scope."
    assert canceled.status_code == 403
    assert _refusals("access.refused").count() == 2
    # Nothing it could run is listed as runnable either.
    (hello,) = client.get("/api/v1/catalog/").json()
    assert hello["actions"][0]["environments"] == []


def test_a_run_token_launches_but_does_not_read(world):
    client = api_client(world.users["member"], scopes=["run"])

    listed = client.get("/api/v1/catalog/")
    launched = api_launch(client)

    assert listed.status_code == 403
    assert listed.json()["detail"] == "This API token has no read scope."
    assert launched.status_code == 201, launched.content


def test_an_environment_limited_token_runs_and_sees_only_there(world):
    client = api_client(world.users["member"], environments=[world.envs["test"]])

    assert api_launch(client, "test").status_code == 201
    refused = api_launch(client, "qa")
    assert refused.status_code == 403
    assert refused.json()["detail"] == "This API token is not limited to QA: it may not run there."
    assert _refusals("run.refused").get().details["reason"] == refused.json()["detail"]
    # The user sees QA runs; the token does not (a run it may not see reads as none).
    assert client.get(f"/api/v1/runs/{world.runs['qa'].pk}/").status_code == 404
    hidden = AuditEvent.objects.filter(verb="access.refused").order_by("-id").first()
    assert hidden.details["reason"] == (
        f"You may not see run #{world.runs['qa'].pk}: this API token is limited to other "
        "environments than the run's."
    )
    assert client.get(f"/api/v1/runs/{world.runs['test'].pk}/").status_code == 200
    (hello,) = client.get("/api/v1/catalog/").json()
    assert hello["actions"][0]["environments"] == ["test"]


def test_a_token_never_grants_more_than_its_user_has(world):
    member = world.users["member"]
    client = api_client(member, environments=[world.envs["production"]])

    response = api_launch(client, "production")

    assert response.status_code == 403
    assert (
        "No grant of your teams lets you run hello-web on Production" in (response.json()["detail"])
    )
    outsider = api_client(world.users["outsider"])
    assert outsider.get(f"/api/v1/runs/{world.runs['test'].pk}/").status_code == 404
    assert outsider.get("/api/v1/catalog/").json() == []


# --- each user's own tokens, by API --------------------------------------------------------
def test_a_user_creates_lists_and_revokes_tokens_by_api(world):
    client = api_client(world.users["member"], name="t")

    created = client.post(
        "/api/v1/tokens/",
        {"name": "deploy-bot", "scopes": ["run"], "environments": ["qa"]},
        content_type="application/json",
    )

    assert created.status_code == 201, created.content
    body = created.json()
    assert body["key"].startswith("pb_")
    assert (body["scopes"], body["environments"]) == (["run"], ["qa"])
    listed = client.get("/api/v1/tokens/").json()
    assert {t["name"] for t in listed} == {"t", "deploy-bot"}
    assert all("key" not in t for t in listed)
    assert body["key"] not in client.get("/api/v1/tokens/").content.decode()
    new = Client(headers={"Authorization": f"Token {body['key']}"})
    assert api_launch(new, "qa").status_code == 201

    revoked = client.post(f"/api/v1/tokens/{body['id']}/revoke/")

    assert revoked.status_code == 200
    assert revoked.json()["active"] is False
    assert api_launch(new, "qa").status_code == 401
    assert AuditEvent.objects.filter(verb="token.revoke", via="api").count() == 1


def test_a_token_cannot_make_a_broader_token(world):
    client = api_client(
        world.users["member"],
        scopes=["read"],
        environments=[world.envs["test"]],
        expires_at=timezone.now() + timedelta(days=1),
    )

    response = client.post(
        "/api/v1/tokens/",
        {"name": "wider", "scopes": ["read", "run"]},
        content_type="application/json",
    )

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors["scopes"] == [
        "The token you use has no run scope, so the new one cannot have it."
    ]
    assert "environments" in errors and "expires_at" in errors
    assert ApiToken.objects.count() == 1


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"scopes": ["read"]}, "name"),
        ({"name": "x", "scopes": ["write"]}, "scopes"),
        ({"name": "x", "environments": ["moon"]}, "environments"),
        ({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "x", "expires_at": "tomorrow"}, "expires_at"),
    ],
)
def test_it_names_the_field_of_a_bad_token_request(world, data, field):
    response = api_client(world.users["member"]).post(
        "/api/v1/tokens/", data, content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["errors"][field]


def test_a_user_cannot_revoke_someone_elses_token(world):
    other, _ = token_create(user=world.users["prod_member"], name="x", acting_user=None, via="cli")

    response = api_client(world.users["member"]).post(f"/api/v1/tokens/{other.pk}/revoke/")

    assert response.status_code == 404
    other.refresh_from_db()
    assert other.revoked_at is None


# --- each user's own tokens, on the profile page ---------------------------------------
def test_the_profile_shows_a_new_key_once(world):
    client = page_client(world.users["member"])
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()

    created = client.post(
        "/profile/tokens/",
        {"name": "laptop", "scopes": ["read"], "environments": [world.envs["qa"].pk],
         "expires_on": tomorrow},
    )  # fmt: skip

    assert created.status_code == 201
    key = re.search(r'<code id="new-token-key">(pb_[^<]+)</code>', created.content.decode())[1]
    token = ApiToken.objects.get(key_hash=ApiToken.hash_key(key))
    assert (token.name, token.scopes, token.user) == ("laptop", ["read"], world.users["member"])
    assert [e.slug for e in token.environments.all()] == ["qa"]
    assert timezone.localtime(token.expires_at).date().isoformat() == tomorrow
    again = client.get("/profile/").content.decode()
    assert key not in again
    assert f"{token.prefix}…" in again
    row = AuditEvent.objects.get(verb="token.create")
    assert (row.via, row.actor_name) == ("web", "member")
    assert key not in str(row.details)


def test_the_profile_says_what_is_wrong_with_a_new_token(world):
    response = page_client(world.users["member"]).post(
        "/profile/tokens/", {"name": "", "scopes": ["admin"], "expires_on": "2001-01-01"}
    )

    assert response.status_code == 400
    html = response.content.decode()
    for field in ("name", "scopes", "expires_on"):
        assert f'id="{field}-error"' in html
    assert not ApiToken.objects.exists()


def test_the_profile_revokes_a_token(world):
    token, _ = token_create(user=world.users["member"], name="x", acting_user=None, via="cli")
    client = page_client(world.users["member"])

    response = client.post(f"/profile/tokens/{token.pk}/revoke/")

    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert (
        page_client(world.users["prod_member"])
        .post(f"/profile/tokens/{token.pk}/revoke/")
        .status_code
        == 404
    )


# --- tokens for service accounts, in the admin ------------------------------------------
def test_ops_make_a_token_for_a_service_account_in_the_admin(world):
    ci = UserFactory(username="ci-hello")
    world.teams["web"].memberships.create(user=ci)
    client = page_client(world.users["ops"])

    response = client.post(
        "/admin/accounts/apitoken/add/",
        {"user": ci.pk, "name": "pipeline", "scopes": ["read", "run"],
         "environments": [world.envs["test"].pk], "expires_at_0": "", "expires_at_1": ""},
    )  # fmt: skip

    assert response.status_code == 200, response.content[:2000]
    key = re.search(r'<code id="new-token-key">(pb_[^<]+)</code>', response.content.decode())[1]
    token = ApiToken.objects.get(key_hash=ApiToken.hash_key(key))
    assert (token.user, token.created_by) == (ci, world.users["ops"])
    assert AuditEvent.objects.get(verb="token.create").via == "admin"
    listing = client.get("/admin/accounts/apitoken/").content.decode()
    assert key not in listing and token.prefix in listing
    assert api_launch(Client(headers={"Authorization": f"Token {key}"})).status_code == 201


def test_an_auditor_cannot_make_tokens_in_the_admin(world):
    client = page_client(world.users["auditor"])

    assert client.get("/admin/accounts/apitoken/").status_code == 200
    assert client.get("/admin/accounts/apitoken/add/").status_code == 403


def test_a_token_whose_environments_are_all_deleted_runs_nowhere(world):
    staging = EnvironmentFactory(slug="staging")
    world.deploy.environments.add(staging)
    client = api_client(world.users["prod_member"], environments=[staging])

    staging.delete()

    assert api_launch(client, "test").status_code == 403
    assert client.get(f"/api/v1/runs/{world.runs['test'].pk}/").status_code == 404
