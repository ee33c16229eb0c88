"""`pushbutton lock` and `pushbutton unlock`: an environment's locks, through the API."""

from __future__ import annotations

import click

from pushbutton_cli.exits import Exit
from pushbutton_cli.launching import Failure, settings_of
from pushbutton_cli.output import Output


@click.command()
@click.argument("environment", metavar="ENV")
@click.option("--service", metavar="SLUG", help="Lock only this service there.")
@click.option("--reason", required=True, help="Why: shown to whoever it stops.")
@click.option("--minutes", type=click.IntRange(1), help="How long it holds.")
@click.option("--until", "expires_at", metavar="ISO8601", help="Or until when.")
@click.option("--json", "as_json", is_flag=True, help="Print the lock as JSON.")
@click.pass_context
def lock(ctx, environment, service, reason, minutes, expires_at, as_json):
    """Lock an environment (or one service there): no run starts until it is unlocked or
    expires."""
    if (minutes is None) == (expires_at is None):
        raise click.UsageError("Give either --minutes or --until.")
    body = {"reason": reason, "service": service}
    body.update({"minutes": minutes} if minutes else {"expires_at": expires_at})
    settings, out = settings_of(ctx), Output(as_json=as_json)
    path = f"/api/v1/environments/{environment}/locks/"
    found = settings.portal().post(path, body).body
    what = found["service"] or "every service"
    out.say(
        f"Locked {what} on {found['environment']} until {found['expires_at']} (lock "
        f"#{found['id']}): {found['reason']}"
    )
    out.result(found)


@click.command()
@click.argument("environment", metavar="ENV")
@click.argument("lock_id", metavar="[LOCK]", type=int, required=False)
@click.option("--service", metavar="SLUG", help="Release the lock of this service there.")
@click.option("--json", "as_json", is_flag=True, help="Print the released locks as JSON.")
@click.pass_context
def unlock(ctx, environment, lock_id, service, as_json):
    """Release a lock of an environment: LOCK by its number, or the one holding for
    --service (or for every service)."""
    settings, out = settings_of(ctx), Output(as_json=as_json)
    portal = settings.portal()
    path = f"/api/v1/environments/{environment}/locks/"
    if lock_id is None:
        held = [lk for lk in portal.get(path) if lk["service"] == service]
        if not held:
            what = service or "every service"
            raise Failure(f"No lock holds for {what} on {environment}.", Exit.USAGE)
        ids = [lk["id"] for lk in held]
    else:
        ids = [lock_id]
    released = [portal.post(f"{path}{n}/unlock/").body for n in ids]
    for found in released:
        out.say(f"Unlocked lock #{found['id']} on {found['environment']}.")
    out.result(released)
