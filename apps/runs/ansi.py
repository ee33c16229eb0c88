"""ANSI colour codes in ansible output, as HTML spans (escaped first)."""

import re

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

SGR = re.compile(r"\x1b\[([0-9;]*)m")
OTHER_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
COLOURS = {str(n): f"fg{n}" for n in [*range(30, 38), *range(90, 98)]}


def strip_ansi(text: str) -> str:
    return OTHER_ESCAPES.sub("", SGR.sub("", text))


def ansi_to_html(text: str) -> SafeString:
    out: list[str] = []
    open_span = False
    pos = 0
    for match in SGR.finditer(text):
        out.append(escape(OTHER_ESCAPES.sub("", text[pos : match.start()])))
        pos = match.end()
        classes = []
        for code in (match.group(1) or "0").split(";"):
            if code in COLOURS:
                classes.append(COLOURS[code])
            elif code == "1":
                classes.append("bold")
        if open_span:
            out.append("</span>")
            open_span = False
        if classes:
            out.append(f'<span class="{" ".join(classes)}">')
            open_span = True
    out.append(escape(OTHER_ESCAPES.sub("", text[pos:])))
    if open_span:
        out.append("</span>")
    return mark_safe("".join(out))  # noqa: S308 - every piece of text was escaped above
