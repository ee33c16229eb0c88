"""The log's text: its lines as ansible-runner numbers them, and what a playbook printed
made harmless to show: colours kept (as HTML spans on the page), every other terminal
sequence removed, every other control character shown as a visible symbol.

A playbook prints what it likes (a task's name, a command's output): escape sequences
that set a terminal's title, write its clipboard (OSC 52), hide a link (OSC 8), clear
the screen, or overwrite a line with a carriage return or backspaces. The download is
read with `cat` and the page is copied into terminals, so neither holds any of them.
"""

import html
import operator
import re
from collections.abc import Sequence
from functools import lru_cache
from itertools import repeat

from django.utils.safestring import SafeString, mark_safe

# One terminal sequence: a CSI (7- or 8-bit) up to its final byte; an OSC, DCS, SOS, PM
# or APC string up to its terminator (BEL or ST), or up to the next ESC (which aborts it
# in a terminal) or the end; any other escape (ESC c, ESC 7, ESC ( B, ...); a lone ESC.
SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c|(?=\x1b)|\Z)"
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]"
    r"|\x1b"
)
# How OSC, DCS, SOS, PM and APC strings start (7-bit): text inside them is no text.
TERMINAL_STRINGS = ("\x1b]", "\x1bP", "\x1bX", "\x1b^", "\x1b_")
SGR = re.compile(r"\x1b\[([0-9;]*)m")
COLOURS = {str(n): f"fg{n}" for n in [*range(30, 38), *range(90, 98)]}
# What is left of control characters: C0 (but tab) and DEL as their Control Pictures
# (␍, ␈, ␇), so a reader sees one was there; C1, the Unicode line and paragraph
# separators and the bidirectional overrides (which make text read as other text) as �.
VISIBLE = {
    **{c: 0x2400 + c for c in range(0x20) if c != 0x09},
    0x7F: 0x2421,
    **dict.fromkeys([*range(0x80, 0xA0), 0x2028, 0x2029, *range(0x202A, 0x202F)], 0xFFFD),
    **dict.fromkeys(range(0x2066, 0x206A), 0xFFFD),
}

# The characters plain_text shows for control characters (stored as the controls).
CONTROL_SYMBOLS = frozenset(map(chr, VISIBLE.values()))


def has_terminal_string(text: str) -> bool:
    return "\x1b" in text and any(start in text for start in TERMINAL_STRINGS)


def split_lines(stdout: str) -> list[str]:
    """The lines of an event's output, as ansible-runner counts them (its start_line and
    end_line): split at "\\n" only, a "\\r" before it being part of the break (Ansible
    ends its lines with "\\r\\n"). Any other separator (a lone "\\r", "\\v", "\\f",
    "\\x1c"-"\\x1e", "\\x85", "\\u2028", "\\u2029") is text inside a line. The one
    definition of a line, wherever lines are counted, shown, linked, searched and
    downloaded."""
    if not stdout:
        return []
    return [line.removesuffix("\r") for line in stdout.split("\n")]


def event_lines(stdout: str, count: int) -> list[str]:
    """The `count` lines ansible-runner numbered for an event (end_line - start_line):
    its output's lines, fitted to them, so numbers never repeat nor go missing. (An
    output line with no number is joined onto the last numbered one; a numbered line
    with no output, a blank line ansible-runner counted, is empty.)"""
    lines = split_lines(stdout)
    if count <= 0:
        return []
    if len(lines) > count:
        lines[count - 1 :] = [" ".join(lines[count - 1 :])]
    return lines + [""] * (count - len(lines))


def plain_text(text: str) -> str:
    """The text a reader sees: without terminal sequences (colours included), its other
    control characters made visible. Only printable characters and tabs are left."""
    return SEQUENCE.sub("", text).translate(VISIBLE)


# What makes plain_text of a whole event's output differ from that of each of its lines
# taken alone: a terminal string (it may run over a line break), a control character
# other than the line breaks, an "\r" not ending a line (bare "\r" at the end too).
NOT_PER_EVENT = re.compile(
    r"[\x00-\x08\x0b-\x0c\x0e-\x1a\x1c-\x1f\x7f-\x9f\u2028-\u202e\u2066-\u2069]"
    r"|\x1b[\]PX^_]|\r(?!\n)"
)


def plain_lines(stdout: str, count: int) -> list[str]:
    """plain_text of each of event_lines(stdout, count), done on the whole output at once
    when that gives the same (colours and other CSI sequences never span lines)."""
    if count <= 0 or stdout.count("\n") >= count or NOT_PER_EVENT.search(stdout):
        return [plain_text(line) for line in event_lines(stdout, count)]
    if "\x1b" in stdout:
        # Colours are most of what Ansible prints: a simpler pattern removes them, and
        # is enough when every escape was one of them.
        text = SGR.sub("", stdout)
        stdout = SEQUENCE.sub("", stdout) if "\x1b" in text else text
    return event_lines(stdout, count)


def plain_lines_of(stdouts: Sequence[str], counts: Sequence[int]) -> list[str]:
    """plain_lines of each stdout and its count, one list for them all. Done in a few
    passes over their text joined (the download's cost per line), which gives the same
    when all it holds is printable text, tabs, line breaks and colours (SGR); each
    output alone otherwise."""
    breaks = list(map(str.count, stdouts, repeat("\n")))
    if all(map(operator.eq, map(operator.sub, counts, breaks), repeat(1))):
        texts = stdouts  # as ansible-runner writes them: a line per number
    else:
        texts = []
        for stdout, count, stdout_breaks in zip(stdouts, counts, breaks, strict=True):
            if count <= 0:
                continue
            if stdout_breaks >= count:
                return _each_plain(stdouts, counts)  # more lines than numbers: some joined
            texts.append(stdout + "\n" * (count - 1 - stdout_breaks))  # blank lines numbered
    if not texts:
        return []
    text = "\n".join(texts)
    # "\r\n" first: a "\r" left by it is one split_lines keeps (a bare "\r", or one
    # before a colour code), and the check below sends it to plain_lines.
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    if "\x1b" in text:
        text = _without_colours(text)
    # Any other escape, "\r" or control character (what plain_text would remove or make
    # visible) is not printable, nor are a few harmless characters (which only cost
    # the slower way). Tabs are not either: lines with one are looked at again.
    lines = text.split("\n")
    if (
        not all(map(str.isprintable, lines))
        and not text.replace("\n", "").replace("\t", "").isprintable()
    ):
        return _each_plain(stdouts, counts)
    return lines


def _without_colours(text: str) -> str:
    """SGR.sub("", text), in one pass per colour the text uses (a log uses a handful)
    rather than a call per sequence. Only when every escape starts a colour code,
    counted before any is removed (a removal can join what is left into a new one)."""
    escapes, found, left = text.count("\x1b"), 0, text
    while (start := left.find("\x1b")) >= 0:
        colour = SGR.match(left, start)
        if colour is None:
            break
        found += text.count(colour.group())
        left = left.replace(colour.group(), "")
    return left if found == escapes and "\x1b" not in left else SGR.sub("", text)


def _each_plain(stdouts: Sequence[str], counts: Sequence[int]) -> list[str]:
    return [
        line
        for stdout, count in zip(stdouts, counts, strict=True)
        for line in plain_lines(stdout, count)
    ]


def _visible(text: str) -> str:
    # Printable text has nothing VISIBLE maps: the translation is skipped (most lines).
    return text if text.isprintable() else text.translate(VISIBLE)


@lru_cache(maxsize=256)
def _colour_classes(sequence: str) -> str | None:
    """The classes of a colour sequence (SGR): "" for one that resets or sets no colour
    or bold; None for any other terminal sequence. A log uses a handful of them."""
    sgr = SGR.fullmatch(sequence)
    if sgr is None:
        return None
    classes = []
    for code in (sgr.group(1) or "0").split(";"):
        if code in COLOURS:
            classes.append(COLOURS[code])
        elif code == "1":
            classes.append("bold")
    return " ".join(classes)


def ansi_to_html(text: str) -> SafeString:
    """The text as HTML: plain_text, escaped, its colours (SGR) as spans. (The standard
    library's html.escape, which Django's escape calls: a page holds thousands of lines.)"""
    if text.isprintable():  # no terminal sequence, no control character
        return mark_safe(html.escape(text))  # noqa: S308 - escaped
    out: list[str] = []
    open_span = False
    pos = 0
    for match in SEQUENCE.finditer(text):
        out.append(html.escape(_visible(text[pos : match.start()])))
        pos = match.end()
        classes = _colour_classes(match.group())
        if classes is None:
            continue
        if open_span:
            out.append("</span>")
            open_span = False
        if classes:
            out.append(f'<span class="{classes}">')
            open_span = True
    out.append(html.escape(_visible(text[pos:])))
    if open_span:
        out.append("</span>")
    return mark_safe("".join(out))  # noqa: S308 - every piece of text was escaped above
