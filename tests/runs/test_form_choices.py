"""Choices from real builds: a run form's choice field listing the tags of a real git
repository, or what a real HTTP server on loopback answers (with a token credential or
without); what the form says when the source is away; the API held to the same list."""

import json
import re
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.cache import cache

from apps.audit.constants import Via
from apps.catalog.choices import choices_fetch
from apps.catalog.parameters import form_definition_errors
from apps.environments.constants import CredentialKind
from apps.environments.services import credential_create
from apps.runs.models import Run
from tests.clients import api_client, api_launch, page_client
from tests.conftest import git_repo
from tests.factories import ActionFactory
from tests.runs.helpers import queue_held

TOKEN = "registry-token-5up3r-s3cret"


class _Builds(BaseHTTPRequestHandler):
    """An artifact registry: GET answers the server's `answer` as JSON, after checking
    the bearer token when the server has one."""

    def do_GET(self):
        server = self.server
        server.seen.append(self.headers.get("Authorization"))
        if server.token and self.headers.get("Authorization") != f"Bearer {server.token}":
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps(server.answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def registry():
    """A real HTTP server on loopback; set `.answer` and `.token`, read `.seen`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Builds)
    server.seen, server.token = [], ""
    server.answer = [{"value": "build-42", "label": "Build 42 (green)"}, "build-41"]
    server.url = f"http://127.0.0.1:{server.server_address[1]}/api/builds"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _no_cached_choices():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def tagged_repo(tmp_path):
    repo = git_repo(tmp_path / "app", {"README": "the app"})
    for tag in ("v1.9.0", "v1.10.0", "v2.0.0", "nightly"):
        subprocess.run(["git", "-C", str(repo), "tag", tag], check=True)
    subprocess.run(["git", "-C", str(repo), "branch", "release-1"], check=True)
    return repo


def _action(environment, source: dict, **field):
    version = {"name": "version", "type": "choice", "required": True, "choices_from": source}
    form = [{**version, **field}]
    assert form_definition_errors(form) == []
    return ActionFactory(environments=[environment], form=form, version_field="version")


def _options(page: str) -> list[tuple[str, str]]:
    return re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', page)


def _form(user, action, environment) -> str:
    url = f"/services/{action.service.slug}/{action.slug}/{environment.slug}/"
    response = page_client(user).get(url)
    assert response.status_code == 200
    return response.content.decode()


def test_the_form_offers_the_tags_of_a_git_repository_newest_first(tagged_repo, local_env, dev):
    action = _action(local_env, {"git": str(tagged_repo), "match": "v*"})

    page = _form(dev, action, local_env)

    assert [value for value, _ in _options(page)] == ["", "v2.0.0", "v1.10.0", "v1.9.0"]


def test_branches_can_be_offered_too(tagged_repo):
    listed = choices_fetch({"git": str(tagged_repo), "refs": "branches"})

    assert listed.error == ""
    assert [value for value, _ in listed.choices] == ["release-1", "main"]


def test_the_form_offers_what_an_endpoint_answers_with_its_token(registry, local_env, dev, ops):
    registry.token = TOKEN
    credential_create(
        name="registry", kind=CredentialKind.SECRET_VARIABLE, variable="registry_token",
        value=TOKEN, environments=[local_env], acting_user=ops, via=Via.CLI,
    )  # fmt: skip
    action = _action(local_env, {"url": registry.url, "token_credential": "registry"})

    page = _form(dev, action, local_env)

    assert _options(page)[1:] == [("build-42", "Build 42 (green)"), ("build-41", "build-41")]
    assert registry.seen == [f"Bearer {TOKEN}"]
    assert TOKEN not in page


def test_an_endpoint_without_a_token(registry, local_env, dev):
    action = _action(local_env, {"url": registry.url})

    page = _form(dev, action, local_env)

    assert [value for value, _ in _options(page)] == ["", "build-42", "build-41"]
    assert registry.seen == [None]


def test_a_source_that_refuses_says_so_on_the_form(registry, local_env, dev):
    registry.token = TOKEN  # and the action names no credential
    action = _action(local_env, {"url": registry.url})

    page = _form(dev, action, local_env)

    assert "The list of choices could not be fetched" in page
    assert f"{registry.url} answered HTTP 401." in page


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_source_leaves_nothing_to_choose(local_env, dev):
    url = f"http://127.0.0.1:{_closed_port()}/builds"
    action = _action(local_env, {"url": url})
    client = api_client(dev)

    page = _form(dev, action, local_env)
    with queue_held():
        response = api_launch(client, local_env, "build-42", action=action)

    assert "The list of choices could not be fetched" in page
    assert f"{url} could not be reached" in page
    assert response.status_code == 400
    errors = response.json()["errors"]["parameters"]["version"]
    assert errors[0].startswith("The list of choices could not be fetched")
    assert not Run.objects.exists()


def test_an_unreachable_source_keeps_free_text_where_the_field_allows_it(tmp_path, local_env, dev):
    action = _action(local_env, {"git": str(tmp_path / "gone")}, allow_free_text=True)

    page = _form(dev, action, local_env)
    with queue_held():
        response = api_launch(api_client(dev), local_env, "v3.0.0", action=action)

    assert 'name="version" maxlength="1000"' in page
    assert "The tags of" in page and "Type the value instead." in page
    assert response.status_code == 201, response.content
    assert Run.objects.get().version == "v3.0.0"


def test_the_api_cannot_launch_a_value_the_list_does_not_hold(tagged_repo, local_env, dev):
    action = _action(local_env, {"git": str(tagged_repo), "match": "v*"}, allow_free_text=True)
    client = api_client(dev)

    with queue_held():
        refused = api_launch(client, local_env, "nightly", action=action)
        launched = api_launch(client, local_env, "v1.10.0", action=action)

    assert refused.status_code == 400
    assert refused.json()["errors"]["parameters"] == {
        "version": ["Select a valid choice. nightly is not one of the available choices."]
    }
    assert launched.status_code == 201, launched.content
    assert Run.objects.get().version == "v1.10.0"


def test_a_source_is_asked_once_while_its_answer_is_cached(registry, local_env, dev):
    action = _action(local_env, {"url": registry.url})
    client = api_client(dev)

    _form(dev, action, local_env)
    _form(dev, action, local_env)
    with queue_held():
        response = api_launch(client, local_env, "build-41", action=action)

    assert response.status_code == 201, response.content
    assert len(registry.seen) == 1


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ({"type": "string", "choices_from": {"url": "https://x"}},
         "only choice fields take their choices from a source"),
        ({"type": "choice", "choices": ["a"], "choices_from": {"url": "https://x"}},
         "give choices or choices_from, not both"),
        ({"type": "choice", "choices_from": {"url": "ftp://x"}}, "must start with http://"),
        ({"type": "choice", "choices_from": {"git": "/r", "url": "https://x"}},
         "exactly one of 'git' and 'url'"),
        ({"type": "choice", "choices_from": {"git": "/r", "refs": "notes"}},
         "refs must be 'tags' or 'branches'"),
        ({"type": "choice", "choices_from": {"git": "/r", "token_credential": "t"}},
         "token_credential is for 'url' sources only"),
        ({"type": "choice", "choices": ["a"], "allow_free_text": True},
         "allow_free_text needs choices_from"),
    ],
)  # fmt: skip
def test_a_bad_source_is_refused_with_a_message(field, message):
    errors = form_definition_errors([{"name": "version", **field}])

    assert any(message in error for error in errors), errors


@pytest.mark.parametrize("away", [False, True])
def test_a_rollback_puts_back_a_version_the_list_no_longer_holds(demo, history, registry, away):
    """The rollback rules decide what may be put back: an earlier version that ran there,
    even once its build left the list, or while the registry is away."""
    field = {"name": "version", "type": "choice", "required": True}
    demo.deploy.form = [{**field, "choices_from": {"url": registry.url}}]
    demo.deploy.save()
    registry.answer = ["3.0.0"]
    if away:
        registry.token = TOKEN  # it answers 401 to the portal, which has no token
    history.deploy("test", "1.0.0")
    current = history.deploy("test", "2.0.0")
    client = api_client(demo.dev)

    deploy = api_launch(client, "test", "1.0.0")
    rollback = api_launch(client, "test", "1.0.0", rollback_of=current.pk, reason="broken")
    unknown = api_launch(client, "test", "0.9.0", rollback_of=current.pk, reason="broken")

    assert deploy.status_code == 400
    assert list(deploy.json()["errors"]["parameters"]) == ["version"]
    assert rollback.status_code == 201, rollback.content
    assert rollback.json()["version"] == "1.0.0"
    assert unknown.status_code == 409
    assert "the versions to roll back to are 1.0.0" in unknown.json()["detail"]
