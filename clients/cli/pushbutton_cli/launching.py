"""Launching a run (deploy, promote, roll back, run), with its idempotency key and its
build's provenance, then following it to its end; and the settings every command uses."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import click

from pushbutton_cli.ci import KEY_VARIABLE, ci_source, idempotency_key
from pushbutton_cli.exits import OUTCOMES, Exit
from pushbutton_cli.follow import POLL_WAIT, WaitTimeout, follow
from pushbutton_cli.output import Output, run_outcome, run_title, status_line, waiting_line
from pushbutton_cli.portal import Clock, Portal, PortalError

__all__ = [
    "Context",
    "Failure",
    "PortalError",
    "Settings",
    "launch",
    "launch_options",
    "parameters",
    "settings_of",
]


class Failure(click.ClickException):
    """Stop with a message and one of the exit codes."""

    def __init__(self, message: str, exit_code: Exit):
        super().__init__(message)
        self.exit_code = int(exit_code)


@dataclass
class Settings:
    """What every command talks to the portal with (from the group's options)."""

    url: str
    token: str
    retry_for: float
    transport: object = None
    clock: Clock | None = None
    _portal: Portal | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return self.url.rstrip("/")

    def portal(self) -> Portal:
        """The portal, once the settings say where it is and with which token."""
        if self._portal is None:
            self._portal = self._connect()
        return self._portal

    def _connect(self) -> Portal:
        if not self.url:
            raise Failure("Set PUSHBUTTON_URL to the portal's address (or --url).", Exit.USAGE)
        if not self.url.startswith(("http://", "https://")):
            raise Failure(f"PUSHBUTTON_URL is not an http(s) URL: {self.url!r}", Exit.USAGE)
        if not self.token:
            raise Failure(
                "Set PUSHBUTTON_TOKEN to an API token (from your profile page in the portal). "
                "It is never taken on the command line.",
                Exit.AUTHENTICATION,
            )
        return Portal(
            self.url,
            self.token,
            retry_for=self.retry_for,
            transport=self.transport,
            clock=self.clock,
            warn=lambda message: click.echo(message, err=True),
        )

    def deadline(self, timeout: float | None) -> float | None:
        return None if timeout is None else (self.clock or Clock()).monotonic() + timeout


@dataclass
class Context:
    """The click context's object: the settings, and (for tests) a transport and a clock."""

    settings: Settings | None = None
    transport: object = None
    clock: Clock | None = None


def settings_of(ctx: click.Context) -> Settings:
    return ctx.find_object(Context).settings


def parameters(pairs: tuple[str, ...]) -> dict:
    """-p KEY=VALUE (a text) and -p KEY:=JSON (a typed value: 3, true, ["a", "b"])."""
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="-p")
        if key.endswith(":"):
            try:
                values[key[:-1]] = json.loads(value)
            except ValueError:
                raise click.BadParameter(f"{pair!r}: not JSON after :=", param_hint="-p") from None
        else:
            values[key] = value
    return values


def deploy_action(settings: Settings, service: str, environment: str, slug: str | None):
    """The deploy action of `service` (`slug`, or the one offered on `environment`) and the
    field of its form that names the version, from the catalog."""
    catalog = settings.portal().get("/api/v1/catalog/")
    found = next((s for s in catalog if s["slug"] == service), None)
    if found is None:
        raise Failure(f"No service {service!r} (or you may not see it).", Exit.USAGE)
    actions = [a for a in found["actions"] if a["kind"] == "deploy" and a.get("version_field")]
    if slug:
        actions = [a for a in found["actions"] if a["slug"] == slug]
    if not actions:
        raise Failure(f"{service} has no deploy action {slug or 'with a version'}.", Exit.USAGE)
    # One offered where you may run it; else the first, and the portal says why not.
    action = next((a for a in actions if environment in a["environments"]), actions[0])
    if not action.get("version_field"):
        raise Failure(f"{action['slug']} of {service} names no version field.", Exit.USAGE)
    return action["slug"], action["version_field"]


def launch_options(command: Callable) -> Callable:
    """The options of every launch: waiting, JSON, the idempotency key, the build."""
    options = [
        click.option("--wait", is_flag=True, help="Follow the log live; exit with the outcome."),
        click.option(
            "--timeout",
            type=click.FloatRange(0, min_open=True),
            metavar="SECONDS",
            help="With --wait: stop waiting after this long (exit 8).",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print the run as JSON."),
        click.option(
            "--verify",
            is_flag=True,
            help="Once it succeeded, run the service's verify action by itself.",
        ),
        click.option(
            "--queue/--no-queue",
            "queue",
            default=None,
            help="If another run holds the service's deploy lock there: wait in line and "
            "start when it frees (--queue), or be refused, exit 4 (--no-queue). Default: "
            "as the environment is set.",
        ),
        click.option(
            "--emergency",
            "emergency_reason",
            default="",
            metavar="REASON",
            help="Override a freeze window, saying why (needs the right).",
        ),
        click.option(
            "--idempotency-key",
            envvar=KEY_VARIABLE,
            default="",
            metavar="KEY",
            help=f"Default: from the CI job (env {KEY_VARIABLE}).",
        ),
        click.option("--commit", metavar="SHA", help="The build's commit (default: CI's)."),
        click.option("--commit-time", metavar="ISO8601", help="When it was committed."),
        click.option("--ref", metavar="REF", help="Its branch or tag."),
        click.option("--repository", metavar="URL", help="Its repository."),
        click.option("--pipeline-url", metavar="URL", help="The pipeline that built it."),
        click.option("--job-url", metavar="URL", help="The job that launches this."),
        click.option("--no-source", is_flag=True, help="Send no build provenance."),
    ]
    return functools.reduce(lambda c, option: option(c), reversed(options), command)


def _source(options: dict) -> dict | None:
    if options["no_source"]:
        return None
    given = {
        "commit": options["commit"],
        "committed_at": options["commit_time"],
        "ref": options["ref"],
        "repository": options["repository"],
        "pipeline_url": options["pipeline_url"],
        "job_url": options["job_url"],
    }
    source = {**ci_source(os.environ), **{k: v for k, v in given.items() if v}}
    if source and not source.get("commit"):
        raise Failure("The build's provenance needs its commit: --commit SHA.", Exit.USAGE)
    return source or None


def launch(settings: Settings, path: str, body: dict, options: dict, *, with_source: bool):
    """POST the launch with its idempotency key (said on stderr), say what was launched,
    and with --wait follow it to its end and exit with its outcome."""
    out = Output(as_json=options["as_json"])
    deadline = settings.deadline(options["timeout"]) if options["wait"] else None
    body = {**body, "verify": options["verify"], "emergency_reason": options["emergency_reason"]}
    if options["queue"] is not None:
        body["when_locked"] = "queue" if options["queue"] else "refuse"
    if with_source:
        body["source"] = _source(options)
    portal = settings.portal()
    key = idempotency_key(os.environ, [path, body], given=options["idempotency_key"])
    if key.origin == "random":
        out.note(
            f"Idempotency-Key: {key.value} (random; to retry this launch safely, run it "
            f"again with {KEY_VARIABLE}={key.value})"
        )
    else:
        out.note(f"Idempotency-Key: {key.value} ({key.origin})")
    answer = portal.post(path, body, headers={"Idempotency-Key": key.value})
    run = answer.body
    if answer.status == 200:
        out.note(f"Launched before with this idempotency key: run #{run['id']}, not a new one.")
    out.say(f"{run_title(run)}: {run['status']}. {settings.base_url}{run['url']}")
    if run.get("waiting"):
        out.say(waiting_line(run))
    if not options["wait"]:
        out.result(run)
        return

    def waiting() -> dict:
        ended = follow(
            portal,
            run["id"],
            print_line=out.say,
            deadline=deadline,
            on_status=lambda seen: out.say(status_line(seen)),
            shown=run,
        )
        if options["verify"] and ended["status"] == "successful":
            out.say(run_outcome(ended, settings.base_url))
            return verification(portal, out, ended, deadline=deadline)
        return ended

    finish(settings, out, run["id"], options["timeout"], waiting)


def verification(portal: Portal, out: Output, run: dict, *, deadline: float | None) -> dict:
    """The verification a successful deploy asked for (`--verify`), once the portal
    launched it, followed to its end: the run a job with `--verify --wait` exits with."""
    while True:
        found = next(
            (
                child
                for child in run.get("follow_ups") or []
                if child["kind"] == "verify" and child["environment"] == run["environment"]
            ),
            None,
        )
        if found is not None:
            break
        if not run.get("awaits_follow_ups"):
            why = run.get("follow_up_error") or "the portal launched none"
            raise Failure(
                f"Run #{run['id']} succeeded, but its verification did not run: {why}",
                Exit.FAILED,
            )
        if deadline is not None and portal.clock.monotonic() >= deadline:
            raise WaitTimeout(run)
        portal.clock.sleep(POLL_WAIT)
        run = portal.get(f"/api/v1/runs/{run['id']}/")
    out.say(f"Verifying it: run #{found['id']} ({found['action']}). {portal.url}{found['url']}")
    return follow(portal, found["id"], print_line=out.say, deadline=deadline)


def finish(settings, out: Output, run_id: int, timeout, waiting, *, print_result=True):
    """Wait (`waiting()` returns the ended run), say how it ended, exit with its outcome."""
    try:
        run = waiting()
    except WaitTimeout as exc:
        run = exc.run
        out.say(
            f"Run #{run_id} is still {run['status']} after {timeout:g} s; it goes on. "
            f"`pushbutton wait {run_id}` waits for it.\n{settings.base_url}{run['url']}"
        )
        if print_result:
            out.result(run)
        raise click.exceptions.Exit(int(Exit.WAIT_TIMEOUT)) from None
    out.say(run_outcome(run, settings.base_url))
    if print_result:
        out.result(run)
    raise click.exceptions.Exit(int(OUTCOMES[run["status"]]))
