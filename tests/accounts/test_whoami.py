"""GET /api/v1/whoami/: who a token acts for, what its teams may do, and the token itself."""

from django.test import Client

from tests.clients import api_client, page_client


def test_it_says_who_the_token_acts_for(world):
    client = api_client(world.users["prod_member"], scopes=["run"], environments=[world.envs["qa"]])

    response = client.get("/api/v1/whoami/")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["username"] == "prod_member"
    assert body["role"] == "developer"
    assert body["teams"] == ["release", "web"]
    assert {"team": "release", "service": "hello-web", "environment": "production",
            "right": "run"} in body["grants"]  # fmt: skip
    token = body["token"]
    assert token["scopes"] == ["run"]  # a token without `read` may still ask who it is
    assert token["environments"] == ["qa"]
    assert token["limited"] is True
    assert token["active"] is True
    assert "key" not in token


def test_signed_in_in_the_browser_there_is_no_token(world):
    response = page_client(world.users["member"]).get("/api/v1/whoami/")

    assert response.status_code == 200
    assert response.json()["token"] is None


def test_without_a_token_it_asks_for_one(world):
    response = Client().get("/api/v1/whoami/")

    assert response.status_code == 401
