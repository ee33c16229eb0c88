"""Every role, every page and API endpoint, each environment: the answer each one gets.

The matrix is data: a new page or endpoint is one line in PAGES or API. Each cell asserts
the status; a refusal must say why and leave its row in the audit log; and no answer,
allowed or refused, shows a run or a service outside the user's rights.
"""

import json
import re
from dataclasses import dataclass, field

import pytest

from apps.audit.constants import Outcome
from apps.audit.models import AuditEvent
from tests.accounts.conftest import ENVS, ROLES
from tests.clients import api_client, page_client

EVERY = frozenset(ENVS)
SIGNED_IN = ("outsider", "member", "prod_member", "ops", "auditor")

# Where each role may do what: {role: environments}. A role not named may not, anywhere.
EVERYONE = {role: EVERY for role in SIGNED_IN}
SEES_HELLO = {"member": EVERY, "prod_member": EVERY, "ops": EVERY, "auditor": EVERY}
RUNS_HELLO = {"member": {"test", "qa"}, "prod_member": EVERY}
SEES_BILLING = {"ops": EVERY, "auditor": EVERY}
CANCELS_OTHERS = {"ops": EVERY}
STAFF = {"ops": EVERY, "auditor": EVERY}
CURATES = {"ops": EVERY}
LOCKS_HELLO = {**RUNS_HELLO, "ops": EVERY}
NOBODY: dict = {}


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str
    allowed: dict
    ok: int
    data: dict | None = None
    # What a signed-in user who may not gets (the admin sends non-staff to its sign-in).
    refused: int = 403
    refused_by_role: dict = field(default_factory=dict)

    @property
    def per_environment(self) -> bool:
        return "{" in self.path or bool(self.data and "{env}" in json.dumps(self.data))


LAUNCH = {"version": "1.2.3"}
ADMIN_ONLY_STAFF = {"outsider": 302, "member": 302, "prod_member": 302}

PAGES = [
    Endpoint("catalog", "get", "/", EVERYONE, 200),
    Endpoint("run list", "get", "/runs/", EVERYONE, 200),
    Endpoint("profile", "get", "/profile/", EVERYONE, 200),
    Endpoint("two-factor", "get", "/accounts/2fa/", EVERYONE, 200),
    Endpoint("new token", "post", "/profile/tokens/", EVERYONE, 201,
             data={"name": "ci", "scopes": ["read"]}),
    Endpoint("action form", "get", "/services/hello-web/deploy/{env}/", RUNS_HELLO, 200),
    Endpoint("launch", "post", "/services/hello-web/deploy/{env}/", RUNS_HELLO, 302, data=LAUNCH),
    Endpoint("launch billing", "post", "/services/billing/deploy/{env}/", NOBODY, 302,
             data=LAUNCH),
    Endpoint("run page", "get", "/runs/{run}/", SEES_HELLO, 200, refused=404),
    Endpoint("live log", "get", "/runs/{run}/log/?after=0", SEES_HELLO, 200, refused=404),
    Endpoint("earlier lines", "get", "/runs/{run}/log/earlier/?before=9", SEES_HELLO, 200,
             refused=404),
    Endpoint("log download", "get", "/runs/{run}/log/download/", SEES_HELLO, 200, refused=404),
    Endpoint("run again", "get", "/runs/{run}/again/", SEES_HELLO, 302, refused=404),
    Endpoint("lines around", "get", "/runs/{run}/log/window/?line=1", SEES_HELLO, 200, refused=404),
    Endpoint("later lines", "get", "/runs/{run}/log/later/?after=1", SEES_HELLO, 200, refused=404),
    Endpoint("log search", "get", "/runs/{run}/log/search/?q=a", SEES_HELLO, 200, refused=404),
    Endpoint("follow-ups", "get", "/runs/{run}/follow-ups/", SEES_HELLO, 200, refused=404),
    Endpoint("service page", "get", "/services/hello-web/", SEES_HELLO, 200, refused=404),
    Endpoint("what runs where", "get", "/what-runs-where/", EVERYONE, 200),
    Endpoint("promote", "get", "/services/hello-web/environments/{env}/promote/", RUNS_HELLO,
             200, refused_by_role={"outsider": 404}),
    Endpoint("roll back", "get", "/services/hello-web/environments/{env}/rollback/", RUNS_HELLO,
             200, refused_by_role={"outsider": 404}),
    Endpoint("lock form", "get", "/environments/{env}/lock/?service=hello-web", LOCKS_HELLO, 200),
    Endpoint("cancel", "post", "/runs/{run}/cancel/", CANCELS_OTHERS, 302,
             refused_by_role={"outsider": 404}),
    Endpoint("billing run page", "get", "/runs/{billing_run}/", SEES_BILLING, 200, refused=404),
    Endpoint("audit log", "get", "/audit/", STAFF, 200),
    Endpoint("admin", "get", "/admin/", STAFF, 200, refused_by_role=ADMIN_ONLY_STAFF),
    Endpoint("admin grants", "get", "/admin/accounts/grant/", STAFF, 200,
             refused_by_role=ADMIN_ONLY_STAFF),
    Endpoint("admin new team", "get", "/admin/accounts/team/add/", CURATES, 200,
             refused_by_role=ADMIN_ONLY_STAFF),
    Endpoint("admin new service", "get", "/admin/catalog/service/add/", CURATES, 200,
             refused_by_role=ADMIN_ONLY_STAFF),
]  # fmt: skip

API = [
    Endpoint("catalog", "get", "/api/v1/catalog/", EVERYONE, 200),
    Endpoint("schema", "get", "/api/v1/schema/", EVERYONE, 200),
    Endpoint("tokens", "get", "/api/v1/tokens/", EVERYONE, 200),
    Endpoint("new token", "post", "/api/v1/tokens/", EVERYONE, 201, data={"name": "ci"}),
    Endpoint("launch", "post", "/api/v1/runs/", RUNS_HELLO, 201,
             data={"service": "hello-web", "action": "deploy", "environment": "{env}",
                   "parameters": {}}),
    Endpoint("launch billing", "post", "/api/v1/runs/", NOBODY, 201,
             data={"service": "billing", "action": "deploy", "environment": "{env}",
                   "parameters": {}}),
    Endpoint("runs list", "get", "/api/v1/runs/?limit=500", EVERYONE, 200),
    Endpoint("runs by commit", "get", "/api/v1/runs/?commit=abc1234", EVERYONE, 200),
    Endpoint("whoami", "get", "/api/v1/whoami/", EVERYONE, 200),
    # Nothing in the world has a version to promote or roll back: who may gets the 409.
    Endpoint("promote", "post", "/api/v1/services/hello-web/environments/{env}/promote/",
             RUNS_HELLO, 409, data={}, refused_by_role={"outsider": 404}),
    Endpoint("roll back", "post", "/api/v1/services/hello-web/environments/{env}/rollback/",
             RUNS_HELLO, 409, data={"reason": "matrix"}, refused_by_role={"outsider": 404}),
    Endpoint("run", "get", "/api/v1/runs/{run}/", SEES_HELLO, 200, refused=404),
    Endpoint("events", "get", "/api/v1/runs/{run}/events/?after=0", SEES_HELLO, 200, refused=404),
    Endpoint("cancel", "post", "/api/v1/runs/{run}/cancel/", CANCELS_OTHERS, 202,
             refused_by_role={"outsider": 404}),
    Endpoint("billing run", "get", "/api/v1/runs/{billing_run}/", SEES_BILLING, 200, refused=404),
    Endpoint("audit log", "get", "/api/v1/audit/", STAFF, 200),
    Endpoint("what runs where", "get", "/api/v1/environments/", EVERYONE, 200),
    Endpoint("service environments", "get", "/api/v1/services/hello-web/environments/",
             SEES_HELLO, 200, refused=404),
]  # fmt: skip


def _cases(endpoints):
    for endpoint in endpoints:
        for env in ENVS if endpoint.per_environment else (None,):
            for role in ROLES:
                yield pytest.param(endpoint, role, env, id=f"{endpoint.name}-{env or 'any'}-{role}")


def _expected(endpoint: Endpoint, role: str, env: str | None) -> int:
    if env in endpoint.allowed.get(role, ()) or (env is None and role in endpoint.allowed):
        return endpoint.ok
    return endpoint.refused_by_role.get(role, endpoint.refused)


def _fill(value, world, env):
    text = json.dumps(value) if not isinstance(value, str) else value
    if env is not None:
        text = text.replace("{run}", str(world.runs[env].pk))
        text = text.replace("{billing_run}", str(world.billing_runs[env].pk))
        text = text.replace("{env}", env)
    return json.loads(text) if not isinstance(value, str) else text


def _hidden_runs(world, role) -> set[int]:
    """Runs this role may not see: no answer may show them."""
    hidden = set()
    for env in ENVS:
        if env not in SEES_HELLO.get(role, ()):
            hidden.add(world.runs[env].pk)
        if env not in SEES_BILLING.get(role, ()):
            hidden.add(world.billing_runs[env].pk)
    return hidden


def _assert_nothing_hidden_shown(body: str, world, role, asked: str) -> None:
    """No run and no service outside the role's rights, unless the request named it."""
    for pk in _hidden_runs(world, role):
        assert f"/runs/{pk}/" not in body.replace(asked, ""), f"run #{pk} shown to {role}"
    if "billing" not in asked and not SEES_BILLING.get(role):
        assert "billing" not in body, f"the billing service shown to {role}"


def _assert_refused_with_a_reason(response, before: int, *, api: bool) -> None:
    reason = response.json()["detail"] if api else _page_reason(response)
    assert reason, "a refusal must say why"
    rows = AuditEvent.objects.filter(outcome=Outcome.REFUSED, id__gt=before)
    assert rows.exists(), "a refusal must leave its row in the audit log"
    assert reason in {row.details.get("reason") for row in rows}


def _assert_hidden_run_reads_as_missing(response, before: int, missing) -> None:
    """A run one may not see answers exactly as a run that does not exist (`missing`:
    the same request for a run number nobody has), and the refusal is still kept,
    with its reason, in the audit log."""
    rows = AuditEvent.objects.filter(outcome=Outcome.REFUSED, id__gt=before)
    assert any("You may not see run #" in row.details.get("reason", "") for row in rows)
    assert (missing.status_code, _body(missing)) == (response.status_code, _body(response))


def _no_such_run(path: str, world, env) -> str:
    """`path` with its run's number replaced by one no run has."""
    for run in (world.runs[env], world.billing_runs[env]):
        path = path.replace(f"/runs/{run.pk}/", "/runs/987654321/")
    return path


def _page_reason(response) -> str:
    match = re.search(r'id="refusal">(.*?)</p>', response.content.decode(), re.S)
    return match.group(1).strip() if match else ""


def _body(response) -> str:
    if response.streaming:
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


def _last_audit_id() -> int:
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


@pytest.mark.parametrize(("endpoint", "role", "env"), list(_cases(PAGES)))
def test_pages(world, endpoint, role, env):
    user = world.users.get(role)
    path = _fill(endpoint.path, world, env)
    data = _fill(endpoint.data, world, env) if endpoint.data else None
    before = _last_audit_id()

    response = getattr(page_client(user), endpoint.method)(path, data or {})

    if user is None:
        assert response.status_code == 302
        assert "/login/" in response["Location"]
        return
    assert response.status_code == _expected(endpoint, role, env), _body(response)[:500]
    if response.status_code == 403:
        _assert_refused_with_a_reason(response, before, api=False)
    if response.status_code == 404 and "/runs/{" in endpoint.path:
        missing = getattr(page_client(user), endpoint.method)(_no_such_run(path, world, env))
        _assert_hidden_run_reads_as_missing(response, before, missing)
    _assert_nothing_hidden_shown(_body(response), world, role, f"{path} {data}")


@pytest.mark.parametrize(("endpoint", "role", "env"), list(_cases(API)))
def test_api(world, endpoint, role, env):
    user = world.users.get(role)
    path = _fill(endpoint.path, world, env)
    data = _fill(endpoint.data, world, env) if endpoint.data else None
    client = api_client(user)
    before = _last_audit_id()

    if endpoint.method == "post":
        response = client.post(path, data or {}, content_type="application/json")
    else:
        response = client.get(path)

    if user is None:
        assert response.status_code == 401
        return
    assert response.status_code == _expected(endpoint, role, env), _body(response)[:500]
    if response.status_code == 403:
        _assert_refused_with_a_reason(response, before, api=True)
    if response.status_code == 404 and "/runs/{" in endpoint.path:
        missing = getattr(client, endpoint.method)(_no_such_run(path, world, env))
        _assert_hidden_run_reads_as_missing(response, before, missing)
    _assert_nothing_hidden_shown(_body(response), world, role, f"{path} {data}")
