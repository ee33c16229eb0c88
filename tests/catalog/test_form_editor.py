"""The admin's editor of an action's form: the JSON textarea with a live preview (htmx) of
the form developers will see, and errors that name the line, column and field."""

import json

import pytest
from django.urls import reverse

from tests.catalog.test_admin import _action_post, _field_row
from tests.clients import page_client
from tests.factories import EnvironmentFactory, PlaybookVersionFactory

PREVIEW = "admin:catalog_action_form_preview"


def _preview(client, text: str) -> str:
    response = client.post(reverse(PREVIEW), {"form": text})
    assert response.status_code == 200
    return response.content.decode()


def test_the_action_page_has_the_editor_wired_to_the_preview(ops_client):
    html = ops_client.get(reverse("admin:catalog_action_add")).content.decode()

    assert f'hx-post="{reverse(PREVIEW)}"' in html
    assert 'hx-trigger="input changed delay:400ms"' in html
    assert '<div id="form-preview"' in html
    assert "/static/vendor/htmx-2.0.11.min.js" in html
    assert '<textarea name="form"' in html  # the JSON stays editable as it is


def test_the_preview_renders_the_form_developers_will_see(ops_client):
    form = [
        {"name": "version", "type": "string", "required": True, "help": "e.g. 1.2.3"},
        {"name": "region", "type": "choice", "required": True, "choices": ["eu", "us"]},
        {"name": "migrate", "type": "boolean", "label": "Run the migrations"},
    ]

    html = _preview(ops_client, json.dumps(form))

    required_mark = '<span aria-hidden="true">*</span>'
    assert f'<label for="id_preview-version">Version {required_mark}</label>' in html
    assert '<input type="text" name="preview-version"' in html
    assert "e.g. 1.2.3" in html
    assert '<option value="" selected>Choose…</option>' in html
    assert '<option value="eu">eu</option>' in html
    assert "Run the migrations" in html and 'type="checkbox"' in html
    assert "errorlist" not in html


def test_the_preview_of_an_empty_form_says_so(ops_client):
    assert "No fields" in _preview(ops_client, "[]")
    assert "No fields" in _preview(ops_client, "")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[\n  {"name": "version",\n   "type": "string"\n   "required": true}\n]',
            "line 4, column 4: Expecting &#x27;,&#x27; delimiter",
        ),
        ('[{"name": "version", "type": }]', "line 1, column 30: Expecting value"),
        (
            json.dumps(
                [
                    {"name": "version", "type": "string"},
                    {"name": "replicas", "type": "integer"},
                    {"name": "region", "type": "choice", "choices": []},
                ]
            ),
            "fields[2].choices: a choice field needs a non-empty list of text choices.",
        ),
        (
            json.dumps([{"name": "version", "type": "string", "pattern": "[0-9"}]),
            "fields[0].pattern: not a valid regular expression",
        ),
        ('{"name": "version"}', "The form must be a list of fields."),
    ],
)
def test_the_preview_names_the_line_column_and_field_of_a_mistake(ops_client, text, message):
    html = _preview(ops_client, text)

    assert '<ul class="errorlist" id="form-preview-errors">' in html
    assert message in html
    assert "<select" not in html and "<input" not in html


def test_the_preview_is_for_ops_only(dev):
    response = page_client(dev).post(reverse(PREVIEW), {"form": "[]"})

    assert response.status_code == 302 and "/login/" in response["Location"]


def test_a_wrong_field_is_named_with_the_line_it_starts_on(ops_client):
    text = (
        "[\n"
        '  {"name": "version", "type": "string"},\n'
        '  {"name": "region",\n'
        '   "type": "choice", "choices": []},\n'
        '  {"name": "replicas", "type": "integer", "min": 5, "max": 1}\n'
        "]"
    )

    html = _preview(ops_client, text)

    assert (
        "<li>line 3, fields[1].choices: a choice field needs a non-empty list of text choices.</li>"
    ) in html
    assert "<li>line 5, fields[2].min: greater than max.</li>" in html


def test_the_action_form_names_the_line_and_field_of_a_mistake(ops_client):
    text = (
        '[\n  {"name": "version", "type": "string"},\n'
        '  {"name": "ansible_user", "type": "string"}\n]'
    )
    response = ops_client.post(
        reverse("admin:catalog_action_add"),
        _action_post(
            PlaybookVersionFactory(), EnvironmentFactory(slug="test"), form=text, version_field=""
        ),
    )

    row = _field_row(response, "form")
    assert row.startswith('<div class="form-row errors')
    assert (
        "line 3, fields[1].name: names starting with &#x27;ansible_&#x27; or "
        "&#x27;pushbutton_&#x27; are reserved."
    ) in row
    assert row.count("are reserved") == 1  # not once more from the model's own check
