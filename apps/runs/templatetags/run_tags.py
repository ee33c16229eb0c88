from django import template

from apps.accounts.permissions import can_view_run

register = template.Library()


@register.filter
def visible_to(runs, user) -> list:
    """The runs `user` may see: a run's page never names runs on environments hidden
    from its reader (e.g. an automatic promotion onto production)."""
    return [run for run in runs if can_view_run(user, run)]


@register.inclusion_tag("runs/_kind.html")
def run_kind(run, links: bool = True) -> dict:
    """What a run is, as every list names it: a *Rollback* badge (of which run), a
    *Promotion* badge (from where), or the action's label. `links=False` inside a link."""
    return {"run": run, "links": links}


def duration_text(seconds: float | None) -> str:
    """A duration as people write it: "3.0 s", "42 s", "4 min 12 s", "1 h 5 min",
    "1 d 6 h" (the same as static/js/run.js writes it while it ticks)."""
    if seconds is None or seconds < 0:
        return ""
    if seconds < 10:
        return f"{int(seconds * 10) / 10:.1f} s"
    if seconds < 60:
        return f"{int(seconds)} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min {int(seconds % 60)} s"
    hours = minutes // 60
    if hours < 24:
        return f"{hours} h {minutes % 60} min"
    return f"{hours // 24} d {hours % 24} h"


@register.filter
def duration(value) -> str:
    """{{ run.duration|duration }}: a timedelta as duration_text writes it."""
    return duration_text(value.total_seconds()) if value is not None else ""


@register.filter
def iso_ms(value) -> str:
    """A datetime as ISO 8601 to the millisecond, as JavaScript's Date.parse reads it."""
    return value.isoformat(timespec="milliseconds") if value is not None else ""
