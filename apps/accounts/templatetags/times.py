"""{% timestamp value %}: a time as `<time datetime="ISO">exact UTC text</time>`.

static/js/portal.js rewrites each one in the reader's time zone: a relative text
("3 min ago") with the exact local time on hover, or, with `exact=True`, the exact
local time (to the microsecond; to the second with `seconds=True`, as tables read
best) with the relative one on hover. Without JavaScript
the UTC text stays, which is right, only less friendly.
"""

from datetime import UTC, datetime

from django import template
from django.utils.html import format_html

register = template.Library()


@register.simple_tag
def timestamp(
    value: datetime | None, exact: bool = False, empty: str = "—", seconds: bool = False
) -> str:
    if not isinstance(value, datetime):
        return empty
    utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if seconds:
        utc = utc.replace(microsecond=0)
    text = utc.strftime(
        "%Y-%m-%d %H:%M:%S.%f" if exact and utc.microsecond else "%Y-%m-%d %H:%M:%S"
    )
    return format_html(
        '<time datetime="{}" data-time="{}">{} UTC</time>',
        utc.isoformat().replace("+00:00", "Z"),
        "exact" if exact else "relative",
        text,
    )
