"""What the API answers to request bodies it cannot take: too deep, too big, not UTF-8,
NUL characters, lone surrogates, numbers beyond any field, duplicate keys. Always a 400
with the reason, never a 500; and a good request still works."""

import json

import pytest
from django.db import DataError

from apps.runs.models import Run
from portal.api import exception_handler

DEEP_ARRAY = "[" * 1500 + "]" * 1500
DEEP_OBJECT = '{"a":' * 1500 + "1" + "}" * 1500


def _endpoints(world) -> dict[str, str]:
    """Every API endpoint that takes a POST body, with a good body for it."""
    return {
        "/api/v1/runs/": json.dumps(
            {"service": "hello-web", "action": "deploy", "environment": "test", "check": True}
        ),
        f"/api/v1/runs/{world.run.pk}/cancel/": "{}",
        "/api/v1/environments/test/locks/": json.dumps(
            {"reason": "maintenance", "minutes": 5, "service": "hello-web"}
        ),
        "/api/v1/tokens/": json.dumps({"name": "pipeline"}),
    }


def _post(world, path: str, body: str | bytes, content_type: str = "application/json"):
    return world.client.generic("POST", path, body, content_type=content_type)


def _refused(response, *words: str) -> str:
    assert response.status_code == 400, (response.status_code, response.content[:300])
    detail = response.json()["detail"]
    for word in words:
        assert word in detail.lower(), detail
    return detail


@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT], ids=["array", "object"])
def test_a_body_1500_deep_is_a_400_on_every_endpoint(api_world, body):
    for path in _endpoints(api_world):
        _refused(_post(api_world, path, body), "deep")
    assert Run.objects.count() == 1


def test_deep_parameters_of_a_launch_are_a_400(api_world):
    body = (
        '{"service": "hello-web", "action": "deploy", "environment": "test", "parameters": '
        + '{"v": ' * 200
        + "1"
        + "}" * 200
        + "}"
    )
    _refused(_post(api_world, "/api/v1/runs/", body), "deep")
    assert Run.objects.count() == 1


def test_the_parser_refuses_them_too_without_the_middleware(api_world, settings):
    """The API's JSON parser bounds what it reads on its own: the middleware refusing
    them first is a second line, not the only one."""
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "RequestInput" not in m]
    launch = '{"service": "hello-web", "action": "deploy", "environment": "test", "parameters": '

    _refused(_post(api_world, "/api/v1/runs/", DEEP_ARRAY), "deep")
    _refused(_post(api_world, "/api/v1/runs/", launch + DEEP_ARRAY + "}"), "deep")
    _refused(_post(api_world, "/api/v1/tokens/", b'{"name": "a\\u0000"}'), "nul")
    assert Run.objects.count() == 1


@pytest.mark.parametrize(
    "exc",
    [
        RecursionError("maximum recursion depth exceeded"),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
        ValueError("invalid literal for int()"),
        OverflowError("date value out of range"),
        DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_the_exception_handler_answers_400_to_what_only_input_causes(exc):
    response = exception_handler(exc, {})

    assert response.status_code == 400
    assert response.data["detail"].startswith("The request ")


# (what is sent, a word the reason has)
BAD_BODIES = {
    "invalid utf-8": (b'{"name": "\xff\xfe"}', "utf-8"),
    "a raw NUL": (b'{"name": "a\x00b"}', "json"),
    "an escaped NUL": (b'{"name": "a\\u0000b"}', "nul"),
    "a lone surrogate": (b'{"name": "\\ud800"}', "surrogate"),
    "a NUL in a key": (b'{"na\\u0000me": "x"}', "nul"),
    "a 5,000-digit number": (b'{"minutes": ' + b"9" * 5000 + b"}", "number"),
    "a 40-digit number": (b'{"minutes": ' + b"9" * 40 + b"}", "number"),
    "a float beyond double": (b'{"minutes": 1e999}', "number"),
    "NaN": (b'{"minutes": NaN}', "nan"),
    "Infinity": (b'{"minutes": -Infinity}', "infinity"),
    "a duplicate key": (b'{"name": "a", "name": "b"}', "duplicate"),
    "truncated": (b'{"name": "a"', "json"),
    "not JSON": (b"name=a", "json"),
    "a megabyte of spaces": (b'{"name": "a"' + b" " * (1024 * 1024) + b"}", "larger"),
    "20,000 keys": (json.dumps({f"k{i}": i for i in range(20_000)}).encode(), "values"),
}


@pytest.mark.parametrize("body,word", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_a_body_it_cannot_read_is_a_400_with_the_reason(api_world, body, word):
    for path in _endpoints(api_world):
        _refused(_post(api_world, path, body), word)
    assert Run.objects.count() == 1


def test_a_body_in_another_content_type_is_a_415(api_world):
    response = _post(api_world, "/api/v1/tokens/", "name=a", content_type="text/plain")

    assert response.status_code == 415
    assert "text/plain" in response.json()["detail"]


def test_good_bodies_still_work(api_world):
    statuses = {
        path: _post(api_world, path, body).status_code
        for path, body in _endpoints(api_world).items()
    }

    assert list(statuses.values()) == [201, 202, 201, 201], statuses


def test_parameters_may_hold_unicode_and_control_characters_but_nul(api_world):
    body = json.dumps(
        {
            "service": "hello-web",
            "action": "deploy",
            "environment": "test",
            "check": True,
            "parameters": {},
            "reason": "naïve ✓ \u2028 tab\there",
        }
    )
    response = _post(api_world, "/api/v1/runs/", body)

    assert response.status_code == 201, response.content


# --- query strings -------------------------------------------------------------------
@pytest.mark.parametrize(
    "query,word",
    [
        ("after=%00", "nul"),
        ("after=%ff", "utf-8"),
        ("after=%ed%a0%80", "utf-8"),  # a surrogate, UTF-8 encoded: not UTF-8
        ("after=1&" + "x" * 9000, "long"),
    ],
    ids=["NUL", "invalid utf-8", "encoded surrogate", "9,000 characters"],
)
def test_a_query_string_it_cannot_read_is_a_400(api_world, query, word):
    response = api_world.client.get(f"/api/v1/runs/{api_world.run.pk}/events/?{query}")

    _refused(response, word)


def test_a_path_that_is_no_endpoint_is_a_json_404(api_world):
    response = api_world.client.get("/api/v1/audit/-5/")

    assert response.status_code == 404
    assert response.json() == {"detail": "No such API endpoint."}
    page = api_world.client.get("/runs/-5/")
    assert page.status_code == 404
    assert page["Content-Type"].startswith("text/html")
