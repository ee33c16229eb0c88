"""The API's JSON: read within bounds, so that no request body can make the server fail.

Python's json module recurses once per level of nesting (1,500 levels raise
RecursionError), reads numbers of any length, takes NaN and 1e999, keeps the last of
two equal keys and lets NUL characters and lone surrogates through (which PostgreSQL
refuses to store). `json_loads` refuses each of these with the reason, as a BadJSON
(a ValueError); the parser turns it into a 400.
"""

import json
import math
import re

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_BODY_BYTES = 1024 * 1024
MAX_DEPTH = 32
MAX_VALUES = 10_000  # keys, items and values, all together
MAX_NUMBER_CHARS = 30  # a 64-bit integer has 20; no field takes more
NOT_TEXT = re.compile(r"[\x00\ud800-\udfff]")


class BadJSON(ValueError):
    """A request body the API does not take; the message says why."""


def _int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise BadJSON(f"A number in the request body has more than {MAX_NUMBER_CHARS} digits.")
    return int(text)


def _float(text: str) -> float:
    value = float(text) if len(text) <= MAX_NUMBER_CHARS else math.inf
    if not math.isfinite(value):
        raise BadJSON(f"A number in the request body is out of range: {text[:40]}")
    return value


def _constant(name: str):
    raise BadJSON(f"{name} is not a JSON number.")


def _object(pairs: list) -> dict:
    value = dict(pairs)
    if len(value) < len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise BadJSON(f"Duplicate key {twice[:100]!r} in the request body.")
    return value


def _text_refusal(text: str) -> str:
    found = NOT_TEXT.search(text)
    if found is None:
        return ""
    if found.group() == "\x00":
        return "The request body holds a NUL character (\\u0000)."
    return (
        f"The request body holds a lone surrogate (\\u{ord(found.group()):04x}), "
        "which is no Unicode character."
    )


def _check(value) -> None:
    """Depth, count and text of every value, without recursion."""
    stack = [(value, 1)]
    count = 0
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise BadJSON(f"The request body holds more than {MAX_VALUES} values.")
        if isinstance(item, dict | list) and depth > MAX_DEPTH:
            raise BadJSON(f"The request body is nested too deep: at most {MAX_DEPTH} levels.")
        if isinstance(item, dict):
            for key, child in item.items():
                if reason := _text_refusal(key):
                    raise BadJSON(reason)
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str) and (reason := _text_refusal(item)):
            raise BadJSON(reason)


def json_loads(raw: bytes):
    """The JSON value of a request body (UTF-8, RFC 8259), or BadJSON saying why not."""
    if len(raw) > MAX_BODY_BYTES:
        raise BadJSON(f"The request body is larger than {MAX_BODY_BYTES} bytes.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadJSON(f"The request body is not UTF-8 text (byte {exc.start}).") from None
    try:
        value = json.loads(
            text,
            parse_int=_int,
            parse_float=_float,
            parse_constant=_constant,
            object_pairs_hook=_object,
        )
    except RecursionError:
        raise BadJSON(f"The request body is nested too deep: at most {MAX_DEPTH} levels.") from None
    except json.JSONDecodeError as exc:
        raise BadJSON(f"The request body is not valid JSON: {exc}.") from None
    _check(value)
    return value


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser, through json_loads: every problem is a 400 with the reason.
    The body is always read as UTF-8 (JSON has no other encoding), whatever the charset
    the Content-Type names."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return json_loads(stream.read(MAX_BODY_BYTES + 1))
        except BadJSON as exc:
            raise ParseError(str(exc)) from None
