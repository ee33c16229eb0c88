"""The admin's editor of an action's form: the JSON textarea, its errors with line, column and
field, and the live preview of the form developers will see (htmx, no SPA)."""

import json
import re

from django import forms
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string
from django.urls import reverse_lazy

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
    """The JSON textarea, with a preview below it that follows each change (htmx posts the
    text to the preview view; the answer is the form as developers see it, or its errors)."""

    preview_url = reverse_lazy("admin:catalog_action_form_preview")

    def __init__(self, attrs=None):
        super().__init__({"rows": 14, "cols": 90, "spellcheck": "false", **(attrs or {})})

    def render(self, name, value, attrs=None, renderer=None):
        attrs = {
            **(attrs or {}),
            "hx-post": str(self.preview_url),
            "hx-trigger": "input changed delay:400ms",
            "hx-target": "#form-preview",
        }
        textarea = super().render(name, value, attrs, renderer)
        preview = render_to_string(
            "catalog/_form_editor.html", {"preview_url": self.preview_url, "name": name}
        )
        return textarea + preview

    class Media:
        js = (HTMX,)


def form_preview(text: str) -> dict:
    """What the preview shows for `text`: its errors, or the form built from it."""
    value, errors = form_definition_parse(text)
    if errors:
        return {"errors": errors, "form": None}
    # Prefixed: the preview sits inside the admin's form, whose own fields have the same ids.
    form = parameters_form_class(value)(prefix="preview")
    return {"errors": [], "form": form, "fields": value}
