from datetime import timedelta

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


@register.filter
def duration(value: timedelta | None) -> str:
    """A duration as people write it: "3.0 s", "42 s", "4 min 12 s", "1 h 5 min"; "—"
    when there is none (a run not started)."""
    if value is None:
        return "—"
    seconds = max(value.total_seconds(), 0)
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s"
