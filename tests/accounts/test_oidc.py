"""Single sign-on with OpenID Connect, against a real provider on 127.0.0.1.

The provider is allauth's own IdP in a subprocess (tests/oidc/provider.py): the portal
fetches its discovery document, exchanges the code and reads userinfo over HTTP, as it
would with Keycloak or Entra ID.
"""

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urljoin

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.test import Client

from apps.accounts.models import Team, User
from apps.audit.models import AuditEvent
from tests.conftest import free_port, stop_process
from tests.factories import TeamFactory

BASE = Path(__file__).resolve().parents[2]
CALLBACK = "http://testserver/accounts/oidc/sso/login/callback/"
PASSWORD = "provider-password"


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    data = tmp_path_factory.mktemp("oidc-provider")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (data / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    config = {
        "client_id": "pushbutton",
        "client_secret": "s3cret-of-the-portal",
        "redirect_uri": CALLBACK,
        "users": {"alice": PASSWORD, "bob": PASSWORD},
    }
    (data / "config.json").write_text(json.dumps(config))
    (data / "groups.json").write_text("{}")
    port = free_port()
    log = open(data / "provider.log", "w+")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.oidc.provider", str(data), str(port)],
        cwd=BASE,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"{url}/.well-known/openid-configuration", timeout=2).ok:
                break
        except requests.ConnectionError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"The OpenID provider did not start:\n{log.read()}")
        time.sleep(0.2)

    def set_groups(**groups):
        (data / "groups.json").write_text(json.dumps(groups))

    yield SimpleNamespace(url=url, config=config, set_groups=set_groups)
    stop_process(proc, timeout=10)
    log.close()


@pytest.fixture
def sso(provider, settings):
    settings.SOCIALACCOUNT_PROVIDERS = {
        "openid_connect": {
            "APPS": [
                {
                    "provider_id": "sso",
                    "name": "Test SSO",
                    "client_id": provider.config["client_id"],
                    "secret": provider.config["client_secret"],
                    "settings": {"server_url": provider.url, "oauth_pkce_enabled": True},
                }
            ]
        }
    }
    return provider


@pytest.fixture
def teams(db):
    return SimpleNamespace(
        web=TeamFactory(slug="web", sso_group="pushbutton-web"),
        qa=TeamFactory(slug="qa", sso_group="pushbutton-qa"),
        # Not mapped to a group: SSO leaves its members alone.
        local=TeamFactory(slug="local"),
    )


def sign_in_with_sso(username: str, idp: requests.Session | None = None) -> Client:
    """The browser's round trip: portal -> provider's sign-in -> portal's callback."""
    idp = idp or requests.Session()
    client = Client()
    page = client.get("/accounts/login/").content.decode()
    assert "Sign in with Test SSO" in page
    start = client.post("/accounts/oidc/sso/login/")
    assert start.status_code == 302, start.content
    url = start["Location"]
    for _ in range(10):
        response = idp.get(url, allow_redirects=False, timeout=10)
        if response.status_code == 200 and 'name="password"' in response.text:
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.text)[1]
            response = idp.post(
                url,
                {"login": username, "password": PASSWORD, "csrfmiddlewaretoken": token},
                allow_redirects=False,
                timeout=10,
            )
        assert response.status_code in (301, 302, 303), response.text[:2000]
        url = urljoin(url, response.headers["Location"])
        if url.startswith(CALLBACK):
            break
    else:
        raise AssertionError("the provider never sent the browser back to the portal")
    done = client.get(url.removeprefix("http://testserver"))
    assert done.status_code == 302, done.content[:2000]
    assert done["Location"] == "/"
    return client


def _teams_of(username: str) -> set[str]:
    return set(
        Team.objects.filter(memberships__user__username=username).values_list("slug", flat=True)
    )


def test_a_new_user_arrives_with_groups_and_lands_in_their_teams(sso, teams):
    sso.set_groups(alice=["pushbutton-web", "pushbutton-qa", "somebody-elses-group"])

    client = sign_in_with_sso("alice")

    alice = User.objects.get(username="alice")
    assert alice.email == "alice@example.com"
    assert alice.role == "developer"
    assert _teams_of("alice") == {"web", "qa"}
    assert client.get("/").status_code == 200
    joined = AuditEvent.objects.filter(verb="membership.create")
    assert {row.details["team"] for row in joined} == {"web", "qa"}
    assert {row.via for row in joined} == {"system"}


def test_a_removed_group_removes_the_membership_at_next_sign_in(sso, teams):
    sso.set_groups(bob=["pushbutton-web", "pushbutton-qa"])
    idp = requests.Session()
    sign_in_with_sso("bob", idp)
    bob = User.objects.get(username="bob")
    teams.local.memberships.create(user=bob)
    assert _teams_of("bob") == {"web", "qa", "local"}

    sso.set_groups(bob=["pushbutton-web"])
    sign_in_with_sso("bob", idp)

    assert _teams_of("bob") == {"web", "local"}
    left = AuditEvent.objects.get(verb="membership.delete")
    assert (left.details["team"], left.details["user"]) == ("qa", "bob")
    assert User.objects.filter(username="bob").count() == 1


def test_no_provider_no_sso_button(db):
    assert b"Sign in with" not in Client().get("/accounts/login/").content
