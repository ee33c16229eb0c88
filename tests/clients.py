"""How a test speaks to the portal over HTTP, as a person or as CI: a signed-in page
client, a token API client, and a launch through the API.

Plain functions rather than fixtures: one test often needs several clients, one per
person (a member beside an outsider, every role of a parametrized matrix), and the tests
of every folder use them. So they live in a module of their own, not in a conftest.py
(which holds fixtures), named for what it holds so that it does not become a drawer of
everything. A launch through the services, without HTTP: tests/runs/helpers.launch.
"""

from django.http import HttpResponse
from django.test import Client

from apps.accounts.services import token_create
from apps.audit.constants import Via


def page_client(user) -> Client:
    """A client signed in as `user`, as after the sign-in page; anonymous for None."""
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def api_client(user, *, name: str = "ci", **token) -> Client:
    """A client sending a new API token of `user` (`token`: the token's scopes,
    environments, expires_at); anonymous for None."""
    if user is None:
        return Client()
    _, key = token_create(user=user, name=name, acting_user=None, via=Via.CLI, **token)
    return Client(headers={"Authorization": f"Token {key}"})


def _slug(thing) -> str:
    return getattr(thing, "slug", thing)


def api_launch(
    client: Client,
    environment="test",
    version: str | None = None,
    *,
    action="deploy",
    service=None,
    **fields,
) -> HttpResponse:
    """POST /api/v1/runs/ as CI sends it: the demo's hello-web deploy unless `action`
    (and `service`) say otherwise. Environment, action and service are slugs or rows (an
    action's own service by default); `version` fills the parameters unless `parameters`
    is given; `fields` are the rest of the body (check, rollback_of, reason, ...)."""
    if service is None:
        service = getattr(action, "service", "hello-web")
    body = {
        "service": _slug(service),
        "action": _slug(action),
        "environment": _slug(environment),
        "parameters": {"version": version} if version else {},
        **fields,
    }
    return client.post("/api/v1/runs/", body, content_type="application/json")
