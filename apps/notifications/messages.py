"""What a notification says, and how each kind of channel is sent it.

A message is built once, as a plain dict (`message`): title, the facts (what ran,
where, which version, who, the outcome, how long), a link; then shaped per channel:
the generic webhook's JSON, Slack's and Teams' incoming-webhook payloads, an e-mail."""

import hashlib
import hmac
import json
import time

from django.conf import settings
from django.urls import reverse

from apps.notifications.constants import Event
from apps.runs.templatetags.run_tags import duration_text

COLOURS = {
    Event.RUN_SUCCEEDED: "2da44e",
    Event.RUN_FIXED: "2da44e",
    Event.RUN_STARTED: "0969da",
    Event.RUN_FAILED: "cf222e",
    Event.RUN_TIMED_OUT: "cf222e",
    Event.RUN_LOST: "cf222e",
    Event.RUN_REFUSED: "bf8700",
}


def absolute(path: str) -> str:
    return settings.PORTAL_URL.rstrip("/") + path if path else ""


def _duration(run) -> str:
    if not run.started_at or not run.finished_at:
        return ""
    return duration_text((run.finished_at - run.started_at).total_seconds())


def run_message(event: str, run) -> dict:
    """What a run's event tells."""
    version = f" {run.version}" if run.version else ""
    dry = " (dry run)" if run.check_mode else ""
    what = f"{run.action_label} {run.service.slug}{version} on {run.environment.name}{dry}"
    title = f"{Event(event).label}: {what}"
    facts = {
        "run": f"#{run.pk}",
        "service": run.service.slug,
        "action": run.action_label,
        "environment": run.environment.name,
        "version": run.version,
        "requested by": run.requested_by_name,
        "status": run.get_status_display(),
        "duration": _duration(run),
        "commit": run.source_commit[:12],
        "error": run.error[:500],
    }
    return {
        "event": event,
        "title": title,
        "facts": {k: v for k, v in facts.items() if v},
        "url": absolute(run.get_absolute_url()),
        "run": {
            "id": run.pk,
            "status": run.status,
            "service": run.service.slug,
            "action": run.action_slug,
            "environment": run.environment.slug,
            "version": run.version,
            "check": run.check_mode,
            "requested_by": run.requested_by_name,
            "rc": run.rc,
            "started_at": run.started_at.isoformat() if run.started_at else None,
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            "source_commit": run.source_commit,
        },
    }


def audit_message(event: str, row) -> dict:
    """What a refusal or a lock, as the audit log holds it, tells."""
    details = row.details or {}
    where = (
        " ".join(x for x in (row.service, "on", row.environment) if x) if row.environment else ""
    )
    reason = details.get("reason") or ""
    title = f"{Event(event).label}: {where or row.object_repr}".strip()
    facts = {
        "by": row.actor_name,
        "service": row.service,
        "environment": row.environment,
        "reason": str(reason)[:500],
        "until": details.get("expires_at", ""),
    }
    return {
        "event": event,
        "title": title,
        "facts": {k: str(v) for k, v in facts.items() if v},
        "url": absolute(reverse("catalog:service", args=[row.service])) if row.service else "",
        "audit_id": row.pk,
    }


def incident_message(event: str, incident) -> dict:
    where = f"{incident.service.slug} on {incident.environment.name}"
    facts = {
        "incident": f"#{incident.pk}",
        "service": incident.service.slug,
        "environment": incident.environment.name,
        "version": incident.version,
        "opened by": incident.opened_by_name,
        "source": incident.get_source_display(),
        "resolution": incident.resolution,
        "link": incident.link,
    }
    run = incident.run
    return {
        "event": event,
        "title": f"{Event(event).label}: {where}: {incident.title}"[:300],
        "facts": {k: v for k, v in facts.items() if v},
        "url": absolute(run.get_absolute_url()) if run else "",
        "incident": {"id": incident.pk, "open": incident.is_open, "run": run.pk if run else None},
    }


def webhook_body(message: dict, *, delivery_id: str) -> dict:
    return {"delivery": delivery_id, **message}


def slack_body(message: dict) -> dict:
    facts = "\n".join(f"*{name}:* {value}" for name, value in message["facts"].items())
    link = f"\n<{message['url']}|Open in Pushbutton>" if message["url"] else ""
    return {
        "text": message["title"],
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{message['title']}*"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": facts + link}},
        ],
    }


def teams_body(message: dict) -> dict:
    """An Office 365 connector card, which Teams' incoming webhooks take."""
    card = {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": message["title"],
        "themeColor": COLOURS.get(message["event"], "6e7781"),
        "title": message["title"],
        "sections": [{"facts": [{"name": k, "value": v} for k, v in message["facts"].items()]}],
    }
    if message["url"]:
        card["potentialAction"] = [
            {
                "@type": "OpenUri",
                "name": "Open in Pushbutton",
                "targets": [{"os": "default", "uri": message["url"]}],
            }
        ]
    return card


def email_text(message: dict) -> str:
    lines = [message["title"], ""]
    lines += [f"{name}: {value}" for name, value in message["facts"].items()]
    if message["url"]:
        lines += ["", message["url"]]
    return "\n".join(lines) + "\n"


def signature(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    """The value of the signature header: `t=<unix time>,v1=<hex HMAC-SHA256 of
    "<t>.<body>" keyed by the channel's signing secret>`. A receiver recomputes it and
    rejects a `t` too old (a replay)."""
    moment = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{moment}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={moment},v1={mac}"


def signature_valid(secret: str, body: bytes, header: str, *, tolerance: int = 300) -> bool:
    """What a receiver does (and the tests): the HMAC matches and the time is recent."""
    try:
        parts = dict(part.split("=", 1) for part in header.split(","))
        moment = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(time.time() - moment) > tolerance:
        return False
    expected = signature(secret, body, timestamp=moment)
    return hmac.compare_digest(expected, header)


def encoded(body: dict) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()
