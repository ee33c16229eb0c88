"""`pushbutton`: deploy, promote, roll back and follow runs of a Pushbutton portal from CI.

Configured by PUSHBUTTON_URL and PUSHBUTTON_TOKEN (the token is never taken on the command
line, where it would show in the job's log and the process list). Exit codes: exits.py.
"""

from __future__ import annotations

import json
import os

import click

from pushbutton_cli import __version__, launching, locks
from pushbutton_cli.exits import SHORT, Exit
from pushbutton_cli.follow import dump, follow, wait
from pushbutton_cli.launching import (
    Context,
    Failure,
    Settings,
    finish,
    launch_options,
    parameters,
    settings_of,
)
from pushbutton_cli.output import RUN_HEADER, Output, run_facts, run_row
from pushbutton_cli.portal import PortalError


class Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except PortalError as exc:
            raise Failure(exc.message, exc.exit_code) from None


EPILOG = "\b\nExit codes:\n" + "\n".join(f"  {code.value}  {SHORT[code]}" for code in Exit)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG)
@click.option(
    "--url", envvar="PUSHBUTTON_URL", metavar="URL", help="The portal (env PUSHBUTTON_URL)."
)
@click.option(
    "--retry-for",
    envvar="PUSHBUTTON_RETRY_FOR",
    type=click.FloatRange(0),
    default=120.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to keep trying a portal that cannot be reached (env PUSHBUTTON_RETRY_FOR).",
)
@click.version_option(__version__, prog_name="pushbutton")
@click.pass_context
def cli(ctx, url, retry_for):
    """Deploy, promote, roll back and follow runs of a Pushbutton portal, from CI.

    Set PUSHBUTTON_URL to the portal and PUSHBUTTON_TOKEN to an API token (from your
    profile page, or `manage.py create_token USER`)."""
    context = ctx.ensure_object(Context)
    context.settings = Settings(
        url=url or "",
        token=os.environ.get("PUSHBUTTON_TOKEN", ""),
        retry_for=retry_for,
        transport=context.transport,
        clock=context.clock,
    )


json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(0, min_open=True),
    metavar="SECONDS",
    help="Stop waiting after this long (exit 8; the run goes on).",
)


@cli.command()
@click.argument("service")
@click.argument("version")
@click.option("--to", "environment", required=True, metavar="ENV", help="Where to deploy.")
@click.option("--action", metavar="SLUG", help="The deploy action (default: the service's).")
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Another field of the form (KEY:=JSON for a typed value); repeatable.",
)
@click.option("--check", is_flag=True, help="A dry run: changes nothing.")
@launch_options
@click.pass_context
def deploy(ctx, service, version, environment, action, params, check, **options):
    """Deploy VERSION of SERVICE to an environment."""
    settings = settings_of(ctx)
    slug, version_field = launching.deploy_action(settings, service, environment, action)
    values = {**parameters(params), version_field: version}
    body = {
        "service": service,
        "action": slug,
        "environment": environment,
        "parameters": values,
        "check": check,
    }
    launching.launch(settings, "/api/v1/runs/", body, options, with_source=True)


@cli.command()
@click.argument("service")
@click.option("--to", "environment", required=True, metavar="ENV", help="Where to promote to.")
@click.option("--version", metavar="VERSION", help="Default: the newest verified before.")
@launch_options
@click.pass_context
def promote(ctx, service, environment, version, **options):
    """Promote SERVICE onto ENV: the version verified on the environment before it, with
    the parameters and the build it was deployed with there."""
    path = f"/api/v1/services/{service}/environments/{environment}/promote/"
    body = {"version": version or ""}
    launching.launch(settings_of(ctx), path, body, options, with_source=False)


@cli.command()
@click.argument("service")
@click.option("--on", "environment", required=True, metavar="ENV", help="Where to roll back.")
@click.option("--to", "version", metavar="VERSION", help="Default: the version before.")
@click.option("--reason", required=True, help="Why: kept on the run and in the audit log.")
@launch_options
@click.pass_context
def rollback(ctx, service, environment, version, reason, **options):
    """Roll SERVICE back on ENV to an earlier version that ran there."""
    path = f"/api/v1/services/{service}/environments/{environment}/rollback/"
    body = {"version": version or "", "reason": reason}
    launching.launch(settings_of(ctx), path, body, options, with_source=False)


@cli.command(name="run")
@click.argument("service")
@click.argument("action")
@click.option("--on", "environment", required=True, metavar="ENV", help="Where to run it.")
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A field of the form (KEY:=JSON for a typed value); repeatable.",
)
@click.option("--check", is_flag=True, help="A dry run: changes nothing.")
@launch_options
@click.pass_context
def run_action(ctx, service, action, environment, params, check, **options):
    """Run ACTION of SERVICE on an environment."""
    body = {
        "service": service,
        "action": action,
        "environment": environment,
        "parameters": parameters(params),
        "check": check,
    }
    launching.launch(settings_of(ctx), "/api/v1/runs/", body, options, with_source=True)


@cli.command()
@click.argument("run_id", metavar="RUN", type=int)
@json_option
@click.pass_context
def status(ctx, run_id, as_json):
    """Show a run: its status, who, when, the build (exit 0 once answered)."""
    settings, out = settings_of(ctx), Output(as_json=as_json)
    run = settings.portal().get(f"/api/v1/runs/{run_id}/")
    out.say(run_facts(run, settings.base_url))
    out.result(run)


@cli.command()
@click.argument("run_id", metavar="RUN", type=int)
@click.option("-f", "--follow", "following", is_flag=True, help="Follow it until it ends.")
@timeout_option
@click.option("--json", "as_json", is_flag=True, help="Print each event as a JSON line.")
@click.pass_context
def logs(ctx, run_id, following, timeout, as_json):
    """Print a run's log; with --follow, as it grows, ending with the run's outcome."""
    settings = settings_of(ctx)
    portal = settings.portal()
    on_event = (lambda e: click.echo(json.dumps(e, sort_keys=True))) if as_json else None
    if not following:
        dump(portal, run_id, print_line=click.echo, on_event=on_event)
        return
    deadline = settings.deadline(timeout)
    finish(
        settings,
        Output(as_json=as_json),
        run_id,
        timeout,
        lambda: follow(portal, run_id, print_line=click.echo, deadline=deadline, on_event=on_event),
        print_result=False,
    )


@cli.command(name="wait")
@click.argument("run_id", metavar="RUN", type=int)
@timeout_option
@json_option
@click.pass_context
def wait_run(ctx, run_id, timeout, as_json):
    """Wait until a run ends; exit with its outcome (at once if it has ended)."""
    settings = settings_of(ctx)
    deadline = settings.deadline(timeout)
    finish(
        settings,
        Output(as_json=as_json),
        run_id,
        timeout,
        lambda: wait(settings.portal(), run_id, deadline=deadline),
    )


@cli.command()
@click.argument("run_id", metavar="RUN", type=int)
@json_option
@click.pass_context
def cancel(ctx, run_id, as_json):
    """Cancel a run (waiting, queued or running)."""
    settings, out = settings_of(ctx), Output(as_json=as_json)
    run = settings.portal().post(f"/api/v1/runs/{run_id}/cancel/").body
    out.say(f"Cancel requested: run #{run['id']} is {run['status']}.")
    out.result(run)


@cli.command()
@click.option("--service", metavar="SLUG")
@click.option("--on", "environment", metavar="ENV")
@click.option(
    "--status",
    type=click.Choice(
        [
            "waiting",
            "queued",
            "running",
            "successful",
            "failed",
            "canceled",
            "timed_out",
            "lost",
            "superseded",
        ]
    ),
)
@click.option("--user", metavar="USERNAME", help="Who requested it.")
@click.option("--commit", metavar="SHA", help="The build's commit, or its first characters.")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@json_option
@click.pass_context
def runs(ctx, as_json, limit, **filters):
    """List runs, newest first."""
    settings, out = settings_of(ctx), Output(as_json=as_json)
    params = {name: value for name, value in filters.items() if value}
    page = settings.portal().get("/api/v1/runs/", {**params, "limit": limit})
    out.say(RUN_HEADER)
    for run in page["results"]:
        out.say(run_row(run))
    out.result(page["results"])


@cli.command()
@json_option
@click.pass_context
def whoami(ctx, as_json):
    """Who the token acts for, and what it may do."""
    settings, out = settings_of(ctx), Output(as_json=as_json)
    me = settings.portal().get("/api/v1/whoami/")
    out.say(f"{me['username']} ({me['role']}) on {settings.base_url}")
    out.say(f"teams: {', '.join(me['teams']) or 'none'}")
    for grant in me["grants"]:
        what = grant["service"] or "every service"
        out.say(f"  {grant['team']}: {grant['right']} {what} on {grant['environment']}")
    token = me.get("token")
    if token:
        where = ", ".join(token["environments"]) if token["limited"] else "every environment"
        out.say(
            f"token {token['name']} ({token['prefix']}…): {', '.join(token['scopes'])} "
            f"on {where}, expires {token['expires_at'] or 'never'}"
        )
    out.result(me)


cli.add_command(locks.lock)
cli.add_command(locks.unlock)


def main() -> None:
    cli(prog_name="pushbutton")


__all__ = ["Context", "Exit", "cli", "main"]
