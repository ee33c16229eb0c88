"""A stand-in for the portal's API (an httpx transport), a clock that does not sleep, and a
way to run `pushbutton` against them. The live tests (tests/cli/ of the project) run the
installed command against a real portal and worker; these check each path of the CLI."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import httpx
import pytest
from click.testing import CliRunner

from pushbutton_cli.cli import cli
from pushbutton_cli.launching import Context

URL = "http://portal.test"
TOKEN = "pb_test-token"  # noqa: S105 (a fake)
# Variables of the machine running the tests that would change what the CLI sends.
CI_VARIABLES = [
    "GITHUB_ACTIONS",
    "GITHUB_RUN_ID",
    "GITHUB_RUN_ATTEMPT",
    "GITHUB_JOB",
    "GITHUB_ACTION",
    "GITHUB_REPOSITORY",
    "GITHUB_SHA",
    "GITHUB_REF",
    "GITHUB_REF_NAME",
    "GITHUB_SERVER_URL",
    "GITLAB_CI",
    "CI_PIPELINE_ID",
    "CI_JOB_ID",
    "CI_JOB_NAME",
    "CI_PROJECT_ID",
    "CI_COMMIT_SHA",
    "CI_COMMIT_TIMESTAMP",
    "CI_COMMIT_REF_NAME",
    "CI_COMMIT_TAG",
    "CI_PROJECT_URL",
    "CI_PIPELINE_URL",
    "CI_JOB_URL",
    "PUSHBUTTON_IDEMPOTENCY_KEY",
    "PUSHBUTTON_RETRY_FOR",
]


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _run(run_id: int, **fields) -> dict:
    return {
        "id": run_id,
        "url": f"/runs/{run_id}/",
        "status": "queued",
        "service": "hello-web",
        "action": "deploy",
        "environment": "test",
        "parameters": {},
        "check": False,
        "version": "",
        "requested_by": "ci",
        "created_at": "2026-03-01T12:00:00Z",
        "started_at": None,
        "finished_at": None,
        "rc": None,
        "host_summary": {},
        "error": "",
        "source": None,
        "rollback_of": None,
        "reason": "",
        "promoted_from": None,
        **fields,
    }


CATALOG = [
    {
        "slug": "hello-web",
        "actions": [
            {
                "slug": "deploy",
                "kind": "deploy",
                "version_field": "version",
                "environments": ["test", "qa"],
            },
            {
                "slug": "smoke-test",
                "kind": "verify",
                "version_field": "",
                "environments": ["test", "qa"],
            },
        ],
    }
]


@dataclass
class FakePortal:
    """Runs that move through `statuses` (one step each time they are asked about), with
    `lines` of log appearing one per ask while running; `errors` answers the next
    requests to a path with a status and body; `drops` connections fail first."""

    statuses: list[str] = field(default_factory=lambda: ["queued", "running", "successful"])
    lines: list[str] = field(default_factory=lambda: ["PLAY [Deploy]", "TASK [copy]", "ok"])
    errors: dict = field(default_factory=dict)
    drops: int = 0
    requests: list[httpx.Request] = field(default_factory=list)
    runs: dict = field(default_factory=dict)
    keys: dict = field(default_factory=dict)
    asked: dict = field(default_factory=dict)
    locks: list = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.drops:
            self.drops -= 1
            raise httpx.ConnectError("connection refused", request=request)
        path = request.url.path
        if self.errors.get(path):
            status, body = self.errors[path].pop(0)
            if isinstance(body, str):
                return httpx.Response(status, text=body)
            return httpx.Response(status, json=body)
        return self._route(request, path)

    def _route(self, request, path):
        body = json.loads(request.content) if request.content else {}
        if path == "/api/v1/catalog/":
            return httpx.Response(200, json=CATALOG)
        if request.method == "POST" and (
            path == "/api/v1/runs/" or path.endswith("ote/") or path.endswith("/rollback/")
        ):
            return self._launch(request, body)
        if path.startswith("/api/v1/runs/") and path.endswith("/events/"):
            return self._events(int(path.split("/")[4]), request)
        if path.startswith("/api/v1/runs/") and path.endswith("/cancel/"):
            run = self.runs[int(path.split("/")[4])]
            run["status"] = "canceled"
            return httpx.Response(202, json=run)
        if path.startswith("/api/v1/runs/") and path.count("/") == 5:
            run_id = int(path.split("/")[4])
            if run_id not in self.runs:
                return httpx.Response(404, json={"detail": "No such run."})
            return httpx.Response(200, json=self._step(run_id))
        if path == "/api/v1/runs/":
            return httpx.Response(
                200,
                json={
                    "count": len(self.runs),
                    "next": None,
                    "previous": None,
                    "results": list(self.runs.values()),
                },
            )
        if path == "/api/v1/whoami/":
            return httpx.Response(200, json=WHOAMI)
        if "/locks/" in path:
            return self._locks(request, path, body)
        return httpx.Response(404, json={"detail": "Not found."})

    def _launch(self, request, body):
        key = request.headers.get("Idempotency-Key")
        if key in self.keys:
            return httpx.Response(200, json=self.runs[self.keys[key]])
        run_id = len(self.runs) + 1
        version = (body.get("parameters") or {}).get("version") or body.get("version", "")
        self.runs[run_id] = _run(run_id, version=version, source=body.get("source"))
        if self.statuses[0] == "waiting":
            self.runs[run_id]["status"] = "waiting"
            self.runs[run_id]["waiting"] = {
                "position": 2,
                "waiting_for": 7,
                "reason": "Waits for run #7 (Deploy, running) to end, behind 1 other in line.",
            }
        self.keys[key] = run_id
        return httpx.Response(201, json=self.runs[run_id])

    def _step(self, run_id: int) -> dict:
        """The run one ask later: the next of `statuses`, the last one sticking."""
        run = self.runs[run_id]
        if run["status"] in ("canceled",):
            return run
        asked = self.asked[run_id] = self.asked.get(run_id, -1) + 1
        run["status"] = self.statuses[min(asked, len(self.statuses) - 1)]
        run["waiting"] = (
            {
                "position": 1,
                "waiting_for": 7,
                "reason": "Waits for run #7 (Deploy, running) to end.",
            }
            if run["status"] == "waiting"
            else None
        )
        if run["status"] not in ("waiting", "queued", "running"):
            run.update(
                rc=0 if run["status"] == "successful" else 2,
                started_at="2026-03-01T12:00:01Z",
                finished_at="2026-03-01T12:00:15Z",
            )
        return run

    def _events(self, run_id: int, request):
        after = int(parse_qs(request.url.query.decode()).get("after", ["0"])[0])
        run = self._step(run_id)
        shown = (
            len(self.lines)
            if run["status"] not in ("waiting", "queued", "running")
            else min(len(self.lines), self.asked[run_id])
        )
        events = [
            {"counter": n, "event": "runner_on_ok", "stdout": self.lines[n - 1] + "\r\n"}
            for n in range(after + 1, shown + 1)
        ]
        return httpx.Response(200, json={"run": run_id, "status": run["status"], "events": events})

    def _locks(self, request, path, body):
        if request.method == "POST" and path.endswith("/unlock/"):
            lock_id = int(path.split("/")[-3])
            return httpx.Response(200, json={**self.locks[lock_id - 1], "active": False})
        if request.method == "POST":
            lock = {
                "id": len(self.locks) + 1,
                "environment": path.split("/")[4],
                "service": body.get("service"),
                "reason": body["reason"],
                "expires_at": "2026-03-01T13:00:00Z",
            }
            self.locks.append(lock)
            return httpx.Response(201, json=lock)
        return httpx.Response(200, json=self.locks)

    def launches(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == "POST" and "/locks/" not in r.url.path]


WHOAMI = {
    "username": "ci",
    "name": "ci",
    "role": "developer",
    "teams": ["web"],
    "grants": [{"team": "web", "service": None, "environment": "test", "right": "run"}],
    "token": {
        "name": "pipeline",
        "prefix": "pb_abc",
        "scopes": ["read", "run"],
        "environments": [],
        "limited": False,
        "expires_at": None,
    },
}


@dataclass
class Pushbutton:
    """Runs `pushbutton ARGS` in-process against the fake portal."""

    portal: FakePortal
    clock: FakeClock

    def __call__(self, *args: str, env: dict | None = None, token: str | None = TOKEN):
        environment = {name: None for name in CI_VARIABLES}
        environment.update({"PUSHBUTTON_URL": URL, "PUSHBUTTON_TOKEN": token})
        environment.update(env or {})
        context = Context(transport=httpx.MockTransport(self.portal.handle), clock=self.clock)
        return CliRunner().invoke(cli, list(args), obj=context, env=environment)


@pytest.fixture
def portal() -> FakePortal:
    return FakePortal()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def pushbutton(portal, clock) -> Pushbutton:
    return Pushbutton(portal, clock)
