"""The admin's editor of an action's form: the JSON textarea, its errors with line, column and
field, the live preview of the form developers will see (htmx, no SPA), and a structured
editor of the same fields beside the JSON (rows rendered here, kept in step with the JSON by
static/js/form-editor.js)."""

import json
import re
from dataclasses import dataclass

from django import forms
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string
from django.urls import reverse_lazy

from apps.catalog.constants import FieldType
from apps.catalog.parameters import form_definition_errors, parameters_form_class

HTMX = "vendor/htmx-2.0.11.min.js"


def json_syntax_error(exc: json.JSONDecodeError) -> str:
    """Where JSON text breaks, as Ops find it in the textarea: "line 4, column 12: …"."""
    return f"line {exc.lineno}, column {exc.colno}: {exc.msg}"


FIELD_AT = re.compile(r"fields\[(\d+)\]")


def _element_lines(text: str) -> list[int]:
    """The line on which each element of the JSON list in `text` starts."""
    decoder, lines = json.JSONDecoder(), []
    index = text.index("[") + 1
    while True:
        while index < len(text) and text[index] in " \t\r\n,":
            index += 1
        if index >= len(text) or text[index] == "]":
            return lines
        lines.append(text.count("\n", 0, index) + 1)
        _value, index = decoder.raw_decode(text, index)


def located(text: str, messages: list[str]) -> list[str]:
    """Messages about "fields[i]" with the line where that field starts in `text`."""
    try:
        lines = _element_lines(text)
    except (ValueError, IndexError):
        return messages
    result = []
    for message in messages:
        match = FIELD_AT.match(message)
        if match and int(match.group(1)) < len(lines):
            message = f"line {lines[int(match.group(1))]}, {message}"
        result.append(message)
    return result


def form_definition_parse(text: str):
    """The form definition in `text`, and what is wrong with it: (value, messages)."""
    if not (text or "").strip():
        return [], []
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, [json_syntax_error(exc)]
    return value, located(text, form_definition_errors(value))


class FormDefinitionField(forms.JSONField):
    """A form definition as JSON text: a syntax error names its line and column."""

    def to_python(self, value):
        if isinstance(value, str) and not value.strip():
            return []  # an empty textarea is a form without fields
        if self.disabled or not isinstance(value, str):
            return super().to_python(value)
        try:
            return json.loads(value, cls=self.decoder)
        except json.JSONDecodeError as exc:
            raise ValidationError(json_syntax_error(exc), code="invalid") from exc


class FormEditorWidget(forms.Textarea):
    """The JSON textarea, with the structured editor of its fields beside it and a preview
    below that follows each change (htmx posts the text to the preview view; the answer is
    the form as developers see it, or its errors)."""

    preview_url = reverse_lazy("admin:catalog_action_form_preview")
    fields_url = reverse_lazy("admin:catalog_action_form_fields")

    def __init__(self, attrs=None):
        super().__init__({"rows": 14, "cols": 90, "spellcheck": "false", **(attrs or {})})

    def render(self, name, value, attrs=None, renderer=None):
        attrs = attrs or {}
        # The model field's help text (Django's aria-describedby) and the editor's own.
        described_by = " ".join(filter(None, ["form-json-help", attrs.get("aria-describedby")]))
        attrs = {
            **attrs,
            "hx-post": str(self.preview_url),
            # Typed by a person, or written by the structured editor (form-editor.js).
            "hx-trigger": "input changed delay:400ms, fields-edited delay:300ms",
            "hx-target": "#form-preview",
            "aria-describedby": described_by,
        }
        textarea = super().render(name, value, attrs, renderer)
        # The text as posted (a form sent back with a mistake) or as saved (JSON already).
        text = value if isinstance(value, str) else json.dumps(value if value is not None else [])
        return render_to_string(
            "catalog/_form_editor.html",
            {
                "textarea": textarea,
                "textarea_id": attrs.get("id", f"id_{name}"),
                "name": name,
                "preview_url": self.preview_url,
                "fields_url": self.fields_url,
                **form_editor_rows(text),
            },
        )

    class Media:
        js = (HTMX, "js/form-editor.js")
        css = {"all": ("css/form-editor.css",)}


# The keys the structured editor shows, in the order it writes them to the JSON.
EDITOR_KEYS = (
    "name", "label", "type", "required", "default", "choices", "choices_from",
    "allow_free_text", "pattern", "min", "max", "help",
)  # fmt: skip
CHOICE_SOURCES = (
    ("list", "The list below"),
    ("git", "A git repository's tags or branches"),
    ("url", "An HTTP(S) endpoint"),
)
_ALL_BUT_BOOLEAN = tuple(t for t in FieldType.values if t != FieldType.BOOLEAN)


@dataclass(frozen=True)
class Part:
    """Inputs of a row that apply to some types only (and, for a choice field, to one way of
    getting its choices): the keys they write, and when they are shown. form-editor.js shows
    and hides them by the same rule, read from the row's data-types and data-sources."""

    keys: tuple[str, ...]
    types: tuple[str, ...]
    sources: tuple[str, ...] = ()

    def shown(self, kind, source: str) -> bool:
        return kind in self.types and (not self.sources or source in self.sources)


PARTS = {
    "required": Part(("required",), _ALL_BUT_BOOLEAN),
    "default": Part(("default",), (FieldType.STRING, FieldType.INTEGER, FieldType.CHOICE)),
    "default_boolean": Part(("default",), (FieldType.BOOLEAN,)),
    "default_lines": Part(("default",), (FieldType.MULTI_CHOICE,)),
    "source": Part((), (FieldType.CHOICE,)),
    "choices": Part(("choices",), (FieldType.CHOICE, FieldType.MULTI_CHOICE), ("list",)),
    "git": Part(("choices_from",), (FieldType.CHOICE,), ("git",)),
    "url": Part(("choices_from",), (FieldType.CHOICE,), ("url",)),
    "allow_free_text": Part(("allow_free_text",), (FieldType.CHOICE,), ("git", "url")),
    "pattern": Part(("pattern",), (FieldType.STRING, FieldType.SECRET)),
    "min_max": Part(("min", "max"), (FieldType.INTEGER,)),
}
ALWAYS_SHOWN = ("name", "label", "type", "help")


def _text(value) -> str:
    """A JSON value as an input shows it: text as it is, true/false and numbers as JSON
    writes them, the rest as JSON."""
    return value if isinstance(value, str) else "" if value is None else json.dumps(value)


def _lines(value) -> str:
    """A list of texts as a textarea shows it, one a line."""
    if isinstance(value, list):
        return "\n".join(_text(item) for item in value)
    return _text(value)


def _choice_source(field: dict) -> str:
    """Where a field's choices come from, as the row's "Choices from" select says it; every
    field but a choice field lists its choices."""
    source = field.get("choices_from")
    if field.get("type") != FieldType.CHOICE or not isinstance(source, dict):
        return "list"
    return "git" if "git" in source else "url" if "url" in source else "list"


def editor_row(field: dict, index: int) -> dict:
    """What the structured editor's row shows for one field of the form definition.

    The keys the row has no input for, for this type, are kept as they are (`extra`, as
    JSON): editing the row leaves them in the JSON, for the validator to name."""
    kind, source = field.get("type"), _choice_source(field)
    shown = {name: part.shown(kind, source) for name, part in PARTS.items()}
    shown_keys = {*ALWAYS_SHOWN, *(k for n, p in PARTS.items() if shown[n] for k in p.keys)}
    choices_from = field.get("choices_from") if source != "list" else {}
    return {
        "index": index,
        "name": _text(field.get("name")),
        "label": _text(field.get("label")),
        "type": _text(kind),
        "known_type": kind in FieldType.values,
        "required": field.get("required") is True,
        "help": _text(field.get("help")),
        "default": _text(field.get("default")),
        "default_lines": _lines(field.get("default")),
        "source": source,
        "choices": _lines(field.get("choices")),
        "allow_free_text": field.get("allow_free_text") is True,
        "pattern": _text(field.get("pattern")),
        "min": _text(field.get("min")),
        "max": _text(field.get("max")),
        **{f"from_{key}": _text(value) for key, value in choices_from.items()},
        "shown": shown,
        "extra": json.dumps({k: v for k, v in field.items() if k not in shown_keys}),
    }


def form_editor_rows(text: str) -> dict:
    """The structured editor's rows for the JSON `text`, or that it cannot show them: only a
    list of objects can be shown as rows (what is wrong is the preview's to name)."""
    context = {
        "rows": [],
        "unreadable": False,
        "field_types": FieldType.choices,
        "choice_sources": CHOICE_SOURCES,
        "parts": {
            name: {"types": " ".join(part.types), "sources": " ".join(part.sources)}
            for name, part in PARTS.items()
        },
        "keys": json.dumps(EDITOR_KEYS),
    }
    if not (text or "").strip():
        return context
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if not (isinstance(value, list) and all(isinstance(field, dict) for field in value)):
        return {**context, "unreadable": True}
    return {**context, "rows": [editor_row(field, i) for i, field in enumerate(value)]}


def form_preview(text: str) -> dict:
    """What the preview shows for `text`: its errors, or the form built from it."""
    value, errors = form_definition_parse(text)
    if errors:
        return {"errors": errors, "form": None}
    # Prefixed: the preview sits inside the admin's form, whose own fields have the same ids.
    form = parameters_form_class(value)(prefix="preview")
    return {"errors": [], "form": form, "fields": value}
