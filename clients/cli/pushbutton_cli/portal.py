"""Talking to the portal's public API (/api/v1/): token auth, JSON, errors turned into
exit codes, and a portal that cannot be reached retried for a while.

Retrying is safe: reads change nothing, and every launch carries an idempotency key, so
a launch sent again (its answer lost with the connection) answers with the same run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from pushbutton_cli import __version__
from pushbutton_cli.exits import Exit, for_http_status

# Proxies and a restarting portal answer these while it is down: tried again.
RETRIED_STATUSES = frozenset({502, 503, 504})
REQUEST_TIMEOUT = 30.0


class PortalError(Exception):
    """A request that did not succeed: what to say, and the exit code it means."""

    def __init__(self, message: str, *, exit_code: Exit, status: int | None = None, body=None):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.status = status
        self.body = body if body is not None else {}


@dataclass
class Clock:
    """Time, as the waiting and retrying see it (tests give one that does not sleep)."""

    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


@dataclass
class Answer:
    status: int
    body: dict | list
    headers: httpx.Headers = field(default_factory=httpx.Headers)


class NotJson(dict):
    """What came instead of JSON (a proxy's HTML page), as {"detail": its first line}."""


def _detail(response: httpx.Response):
    """The JSON body, or the start of whatever else came."""
    try:
        return response.json()
    except ValueError:
        text = response.text.strip().splitlines()
        return NotJson(detail=text[0][:200] if text else response.reason_phrase)


class Portal:
    """The portal at `url`, asked with `token`. A request that cannot reach it (or that a
    proxy answers 502/503/504) is tried again, waiting longer each time, for up to
    `retry_for` seconds; then PortalError (UNREACHABLE). `warn` is told once per outage."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        retry_for: float = 120.0,
        transport: httpx.BaseTransport | None = None,
        clock: Clock | None = None,
        warn: Callable[[str], None] = lambda message: None,
    ):
        self.url = url.rstrip("/")
        self.retry_for = retry_for
        self.clock = clock or Clock()
        self.warn = warn
        self.http = httpx.Client(
            base_url=self.url,
            headers={
                "Authorization": f"Token {token}",
                "Accept": "application/json",
                "User-Agent": f"pushbutton-cli/{__version__}",
            },
            timeout=REQUEST_TIMEOUT,
            transport=transport,
        )

    def get(self, path: str, params: dict | None = None):
        return self.request("GET", path, params=params).body

    def post(self, path: str, body: dict | None = None, headers: dict | None = None) -> Answer:
        return self.request("POST", path, json=body or {}, headers=headers)

    def request(self, method: str, path: str, **options) -> Answer:
        """Send one request, tried again while the portal cannot be reached; the answer
        when it succeeded (2xx), else PortalError with the portal's reason."""
        started = self.clock.monotonic()
        delay, told = 0.5, False
        while True:
            try:
                response = self.http.request(method, path, **options)
            except httpx.TransportError as exc:
                trouble, response = f"{type(exc).__name__}: {exc}".rstrip(": "), None
            else:
                if response.status_code not in RETRIED_STATUSES:
                    break
                trouble = f"HTTP {response.status_code}: {_detail(response).get('detail', '')}"
            waited = self.clock.monotonic() - started
            if waited + delay > self.retry_for:
                raise PortalError(
                    f"The portal at {self.url} cannot be reached ({trouble}); gave up after "
                    f"{waited:.0f} s.",
                    exit_code=Exit.UNREACHABLE,
                    status=response.status_code if response is not None else None,
                )
            if not told:
                self.warn(
                    f"The portal cannot be reached ({trouble}): trying again for up to "
                    f"{self.retry_for:.0f} s."
                )
                told = True
            self.clock.sleep(delay)
            delay = min(delay * 2, 10.0)
        body = _detail(response)
        if response.is_success and isinstance(body, NotJson):
            raise PortalError(
                f"{self.url}{path} answered {response.status_code} but not with JSON "
                f"({body['detail']!r}): is PUSHBUTTON_URL the portal?",
                exit_code=Exit.USAGE,
                status=response.status_code,
            )
        if response.is_success:
            return Answer(response.status_code, body, response.headers)
        raise PortalError(
            _reason(response.status_code, body),
            exit_code=for_http_status(response.status_code),
            status=response.status_code,
            body=body,
        )


def _reason(status: int, body) -> str:
    """What the portal said was wrong, in one message: its detail and each field's errors."""
    if not isinstance(body, dict):
        return f"HTTP {status}"
    detail = str(body.get("detail") or f"HTTP {status}")
    errors = body.get("errors")
    lines = [detail]
    if isinstance(errors, dict):
        for name, messages in _flat(errors):
            if messages != [detail]:
                lines.append(f"  {name}: {' '.join(messages)}")
    return "\n".join(lines)


def _flat(errors: dict, prefix: str = ""):
    """(field path, [messages]) of DRF's nested errors ({"source": {"commit": [...]}})."""
    for name, value in errors.items():
        path = f"{prefix}{name}"
        if isinstance(value, dict):
            yield from _flat(value, f"{path}.")
        elif isinstance(value, list):
            yield path, [str(v) for v in value]
        else:
            yield path, [str(value)]
