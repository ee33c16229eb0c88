"""Two-factor authentication: set up on the profile, asked at sign-in, and required (with a
recent confirmation) to run where an environment says so; by API, a token limited to it."""

import re
import time
from urllib.parse import quote

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import (
    TOTP,
    format_hotp_value,
    generate_totp_secret,
    hotp_value,
)
from django.core.cache import cache
from django.test import Client

from apps.accounts.models import ApiToken
from apps.audit.constants import Via
from apps.audit.models import AuditEvent
from apps.runs import services
from apps.runs.models import Run
from tests.clients import api_client, api_launch, page_client
from tests.factories import PASSWORD
from tests.runs.helpers import launch

FORM = "/services/hello-web/deploy/production/"
REAUTH = "/accounts/2fa/reauthenticate/"


def code(secret: str, *, step: int = 0) -> str:
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30 + step))


@pytest.fixture(autouse=True)
def _fresh_cache():
    # Used codes are remembered in the cache (no replay), keyed by user id.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def mfa_world(world):
    production = world.envs["production"]
    production.require_mfa = True
    production.save()
    return world


@pytest.fixture
def enrolled(mfa_world):
    """prod_member, with an authenticator app."""
    secret = generate_totp_secret()
    TOTP.activate(mfa_world.users["prod_member"], secret)
    return secret


def _launches():
    return Run.objects.filter(check_mode=False)


def _confirm(client: Client, secret: str, next_url: str = FORM):
    return client.post(REAUTH, {"code": code(secret), "next": next_url})


# --- without an authenticator app -----------------------------------------------------
def test_without_mfa_production_is_refused_with_a_reason(mfa_world):
    client = page_client(mfa_world.users["prod_member"])

    page = client.get(FORM)
    posted = client.post(FORM, {"version": "1.2.3"})

    reason = (
        "Production requires two-factor authentication: set up an authenticator app on "
        "your profile page first."
    )
    assert page.status_code == 403 and reason in page.content.decode()
    assert posted.status_code == 403
    assert not _launches().exists()
    assert AuditEvent.objects.get(verb="run.refused").details["reason"] == reason
    # The catalog draws no button there, and says why.
    html = client.get("/").content.decode()
    row = re.search(r'<tr data-environment="production">(.*?)</tr>', html, re.S)[1]
    assert "/services/" not in row and "set up an authenticator app" in row
    # Elsewhere nothing changes.
    assert client.post("/services/hello-web/deploy/test/", {}).status_code == 302


# --- with one ------------------------------------------------------------------------
def test_with_mfa_running_needs_a_fresh_confirmation_then_goes(mfa_world, enrolled):
    client = page_client(mfa_world.users["prod_member"])

    asked = client.get(FORM)

    assert asked.status_code == 302
    assert asked["Location"].startswith(f"{REAUTH}?next=")
    assert 'name="code"' in client.get(asked["Location"]).content.decode()
    confirmed = _confirm(client, enrolled)
    assert confirmed.status_code == 302 and confirmed["Location"] == FORM
    assert client.get(FORM).status_code == 200
    launched = client.post(FORM, {"version": "1.2.3"})
    assert launched.status_code == 302
    assert _launches().get().environment.slug == "production"


def test_a_wrong_code_confirms_nothing(mfa_world, enrolled):
    client = page_client(mfa_world.users["prod_member"])

    response = client.post(REAUTH, {"code": "000000", "next": FORM})

    assert response.status_code == 200
    assert client.get(FORM).status_code == 302


def test_a_stale_confirmation_is_asked_again(mfa_world, enrolled):
    client = page_client(mfa_world.users["prod_member"])
    _confirm(client, enrolled)
    session = client.session
    records = session["account_authentication_methods"]
    for record in records:
        record["at"] -= 301
    session["account_authentication_methods"] = records
    session.save()

    assert client.get(FORM).status_code == 302
    assert client.post(FORM, {"version": "1.2.3"}).status_code == 302
    assert not _launches().exists()


def test_a_launch_asked_for_a_confirmation_goes_on_after_it(mfa_world, enrolled):
    client = page_client(mfa_world.users["prod_member"])

    asked = client.post(FORM, {"version": "2.0.0"})
    assert asked.status_code == 302
    assert asked["Location"] == f"{REAUTH}?next={quote(FORM, safe='')}"
    assert not _launches().exists()

    confirmed = _confirm(client, enrolled)

    run = _launches().get()
    assert confirmed.status_code == 302
    assert confirmed["Location"] == f"/runs/{run.pk}/"


def test_a_service_call_without_a_page_cannot_prove_a_confirmation(mfa_world, enrolled):
    with pytest.raises(services.LaunchRefused, match="only the portal's pages can ask for"):
        launch(
            user=mfa_world.users["prod_member"],
            action=mfa_world.deploy,
            environment=mfa_world.envs["production"],
            parameters={},
            via=Via.CLI,
        )


# --- by API ----------------------------------------------------------------------------
def test_by_api_a_token_must_be_limited_to_the_environment(mfa_world):
    user = mfa_world.users["prod_member"]

    unlimited = api_launch(api_client(user), "production")
    limited = api_launch(
        api_client(user, environments=[mfa_world.envs["production"]]), "production"
    )

    assert unlimited.status_code == 403
    assert unlimited.json()["detail"] == (
        "Production requires two-factor authentication: through the API, use a token "
        "limited to Production."
    )
    assert limited.status_code == 201, limited.content
    # ...and the token still never grants more than its user has.
    member = api_client(mfa_world.users["member"], environments=[mfa_world.envs["production"]])
    assert api_launch(member, "production").status_code == 403


# --- setting it up, and signing in with it ----------------------------------------------
def test_a_user_sets_up_an_authenticator_from_the_profile(mfa_world):
    user = mfa_world.users["prod_member"]
    client = Client()
    client.post("/accounts/login/", {"login": user.username, "password": PASSWORD})
    profile = client.get("/profile/").content.decode()
    assert 'href="/accounts/2fa/totp/activate/"' in profile

    # Setting it up asks for the password first.
    asked = client.get("/accounts/2fa/totp/activate/")
    assert asked.status_code == 302
    client.post(asked["Location"].split("?")[0], {"password": PASSWORD, "next": asked.url})
    page = client.get("/accounts/2fa/totp/activate/").content.decode()
    secret = re.search(r'id="authenticator_secret" value="([A-Z2-7]+)"', page)[1]
    activated = client.post("/accounts/2fa/totp/activate/", {"code": code(secret)})

    assert activated.status_code == 302
    assert Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
    assert Authenticator.objects.filter(user=user, type="recovery_codes").exists()
    assert "An authenticator app protects your account." in client.get("/profile/").content.decode()


def test_sign_in_asks_for_the_code_and_counts_as_a_confirmation(mfa_world, enrolled):
    user = mfa_world.users["prod_member"]
    client = Client()

    first = client.post("/accounts/login/", {"login": user.username, "password": PASSWORD})

    assert first.status_code == 302 and first["Location"] == "/accounts/2fa/authenticate/"
    assert client.get("/").status_code == 302  # not signed in yet
    second = client.post("/accounts/2fa/authenticate/", {"code": code(enrolled)})
    assert second.status_code == 302
    assert client.get("/").status_code == 200
    assert client.get(FORM).status_code == 200


# --- tokens for an environment that requires it ----------------------------------------
def test_by_api_an_unlimited_token_cannot_make_one_for_production(mfa_world):
    client = api_client(mfa_world.users["prod_member"])

    response = client.post(
        "/api/v1/tokens/",
        {"name": "sneaky", "environments": ["production"]},
        content_type="application/json",
    )

    assert response.status_code == 400
    assert "requires two-factor authentication" in response.json()["errors"]["environments"][0]
    assert ApiToken.objects.count() == 1


def test_by_api_a_token_limited_to_production_may_pass_it_on(mfa_world):
    client = api_client(mfa_world.users["prod_member"], environments=[mfa_world.envs["production"]])

    response = client.post(
        "/api/v1/tokens/",
        {"name": "narrower", "scopes": ["run"], "environments": ["production"]},
        content_type="application/json",
    )

    assert response.status_code == 201, response.content


def _profile_token(client, production):
    return client.post(
        "/profile/tokens/", {"name": "prod", "scopes": ["run"], "environments": [production.pk]}
    )


def test_the_profile_makes_no_production_token_without_mfa(mfa_world):
    response = _profile_token(
        page_client(mfa_world.users["prod_member"]), mfa_world.envs["production"]
    )

    assert response.status_code == 400
    assert "Production requires two-factor authentication" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_the_profile_makes_a_production_token_after_a_fresh_confirmation(mfa_world, enrolled):
    client = page_client(mfa_world.users["prod_member"])
    production = mfa_world.envs["production"]

    assert _profile_token(client, production).status_code == 400
    _confirm(client, enrolled, "/profile/")
    created = _profile_token(client, production)

    assert created.status_code == 201
    token = ApiToken.objects.get()
    assert [e.slug for e in token.environments.all()] == ["production"]


def test_ops_make_no_production_token_for_an_account_without_mfa(mfa_world):
    ci = mfa_world.users["member"]
    client = page_client(mfa_world.users["ops"])
    data = {"user": ci.pk, "name": "pipeline", "scopes": ["run"],
            "environments": [mfa_world.envs["production"].pk],
            "expires_at_0": "", "expires_at_1": ""}  # fmt: skip

    refused = client.post("/admin/accounts/apitoken/add/", data)

    assert refused.status_code == 200
    assert "has no authenticator app" in refused.content.decode()
    assert not ApiToken.objects.exists()
    TOTP.activate(ci, generate_totp_secret())
    created = client.post("/admin/accounts/apitoken/add/", data)
    assert 'id="new-token-key"' in created.content.decode()
    assert ApiToken.objects.get().user == ci
