from django import template
from django.urls import reverse
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe

from apps.accounts.permissions import can_view_run

register = template.Library()


@register.filter
def visible_to(runs, user) -> list:
    """The runs `user` may see: a run's page never names runs on environments hidden
    from its reader (e.g. an automatic promotion onto production)."""
    return [run for run in runs if can_view_run(user, run)]


@register.simple_tag
def run_kind(run, links: bool = True) -> SafeString:
    """What a run is, as every list names it: a *Rollback* badge (of which run), a
    *Promotion* badge (from where), or the action's label. `links=False` inside a link.
    Written here rather than in a template of its own: what runs where and the runs list
    name a run in each of their cells or rows."""
    if run.is_rollback:
        badge = mark_safe('<span class="badge rollback">Rollback</span>')
        if not run.rollback_of_id:
            return badge
        number = f"#{run.rollback_of_id}"
        if links:
            url = reverse("runs:detail", args=[run.rollback_of_id])
            number = format_html('<a href="{}">{}</a>', url, number)
        version = run.rollback_of.version
        return format_html(
            "{} of {}{}", badge, number, format_html(" ({})", version) if version else ""
        )
    if run.is_promotion:
        return format_html(
            '<span class="badge promotion">Promotion</span> from {}', run.promoted_from.name
        )
    return conditional_escape(run.action_label)


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


@register.simple_tag
def log_lines(lines) -> SafeString:
    """The log's lines (selectors' LogLines) as HTML, one `<div class="line">` each,
    written here rather than in a template loop: a poll or a screen holds thousands of
    them, and the template language took most of their time."""
    return mark_safe("".join(map(_log_line, lines)))  # noqa: S308 - every value is escaped


FOLD = '<button type="button" class="fold" aria-expanded="true" aria-label="Fold this {}">'


def _log_line(line) -> str:
    # The number, times and section name are the selectors' own (digits, ISO 8601, a
    # word): nothing in them to escape. The text is HTML already (ansi_to_html).
    number, section = line.number, line.section
    classes = "line" + (" failed" if line.failed else "") + (f" head {section}" if section else "")
    if line.stamp:
        stamp = line.stamp
        time = f'<time class="ts" datetime="{stamp}" title="{stamp}">{line.clock}</time>'
    else:
        time = '<span class="ts"></span>'
    fold = FOLD.format(section) + "</button>" if section in ("play", "task") else ""
    end = '<span class="dur"></span></div>\n' if section else "</div>\n"
    return (
        f'<div class="{classes}" id="L{number}"><a class="ln" href="#L{number}">{number}</a>'
        f'{time}{fold}<span class="txt">{conditional_escape(line.html)}</span>{end}'
    )
