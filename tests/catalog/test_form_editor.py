"""The admin's editor of an action's form: the JSON textarea with a live preview (htmx) of
the form developers will see, errors that name the line, column and field, and the
structured editor's rows rendered from the JSON."""

import json
import re

import pytest
from django.urls import reverse

from apps.catalog.constants import FieldType
from apps.catalog.forms import EDITOR_KEYS, PARTS, editor_row, form_editor_rows
from apps.catalog.parameters import FIELD_KEYS
from tests.catalog.test_admin import _action_post, _field_row
from tests.clients import page_client
from tests.factories import EnvironmentFactory, PlaybookVersionFactory

PREVIEW = "admin:catalog_action_form_preview"
FIELDS = "admin:catalog_action_form_fields"


def _preview(client, text: str) -> str:
    response = client.post(reverse(PREVIEW), {"form": text})
    assert response.status_code == 200
    return response.content.decode()


def test_the_action_page_has_the_editor_wired_to_the_preview(ops_client):
    html = ops_client.get(reverse("admin:catalog_action_add")).content.decode()

    assert f'hx-post="{reverse(PREVIEW)}"' in html
    assert 'hx-trigger="input changed delay:400ms, fields-edited delay:300ms"' in html
    assert '<div id="form-preview"' in html
    assert "/static/vendor/htmx-2.0.11.min.js" in html
    assert '<textarea name="form"' in html  # the JSON stays editable as it is
    assert 'aria-describedby="form-json-help id_form_helptext"' in html


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


# --- the structured editor ----------------------------------------------------
def _fields(client, text: str) -> str:
    response = client.post(reverse(FIELDS), {"form": text})
    assert response.status_code == 200
    return response.content.decode()


def test_the_editor_has_an_input_for_every_key_of_a_field():
    assert set(EDITOR_KEYS) == FIELD_KEYS
    written = {"name", "label", "type", "help"} | {k for p in PARTS.values() for k in p.keys}
    assert written == FIELD_KEYS
    assert {t for p in PARTS.values() for t in p.types} == set(FieldType.values)


def test_a_row_shows_what_its_type_has():
    row = editor_row(
        {"name": "replicas", "type": "integer", "required": True, "min": 1, "max": 9,
         "default": 3, "help": "How many"},
        2,
    )  # fmt: skip

    assert row["index"] == 2
    assert (row["name"], row["type"], row["required"]) == ("replicas", "integer", True)
    assert (row["min"], row["max"], row["default"], row["help"]) == ("1", "9", "3", "How many")
    assert {name for name, shown in row["shown"].items() if shown} == {
        "required", "default", "min_max",
    }  # fmt: skip
    assert json.loads(row["extra"]) == {}


def test_a_row_of_a_choice_field_from_git_shows_its_source():
    row = editor_row(
        {"name": "tag", "type": "choice", "allow_free_text": True,
         "choices_from": {"git": "https://git.example/app.git", "refs": "branches",
                          "match": "release/*", "limit": 20}},
        0,
    )  # fmt: skip

    assert row["source"] == "git"
    assert (row["from_git"], row["from_refs"], row["from_match"], row["from_limit"]) == (
        "https://git.example/app.git", "branches", "release/*", "20",
    )  # fmt: skip
    assert row["allow_free_text"] is True
    shown = {name for name, shown in row["shown"].items() if shown}
    assert shown == {"required", "default", "source", "git", "allow_free_text"}


def test_a_row_keeps_the_keys_it_has_no_input_for_as_they_are():
    """Editing the row must not drop them: the validator names them in the preview."""
    row = editor_row(
        {"name": "region", "type": "string", "colour": "red", "min": 2, "choices": ["a"]}, 0
    )

    assert json.loads(row["extra"]) == {"colour": "red", "min": 2, "choices": ["a"]}
    assert row["shown"]["pattern"] and not row["shown"]["min_max"]


def test_a_row_of_an_unknown_type_keeps_what_it_cannot_show():
    row = editor_row({"name": "region", "type": "text", "pattern": "[a-z]+"}, 0)

    assert not row["known_type"] and not any(row["shown"].values())
    assert json.loads(row["extra"]) == {"pattern": "[a-z]+"}


def test_only_a_list_of_objects_is_shown_as_rows():
    assert form_editor_rows("")["rows"] == [] and not form_editor_rows("")["unreadable"]
    for text in ('[{"name": "a",}]', '{"name": "a"}', '["a"]'):
        assert form_editor_rows(text)["unreadable"], text
    rows = form_editor_rows('[{"name": "a", "type": "string"}, {"name": "b"}]')["rows"]
    assert [row["name"] for row in rows] == ["a", "b"]


def test_the_rows_are_rendered_from_the_posted_json(ops_client):
    form = [
        {"name": "version", "type": "string", "required": True, "pattern": r"^\d+$"},
        {"name": "region", "type": "choice", "choices": ["eu", "us"], "default": "eu"},
        {"name": "features", "type": "multi-choice", "choices": ["a", "b"], "default": ["b"]},
        {"name": "migrate", "type": "boolean", "default": True},
    ]

    html = _fields(ops_client, json.dumps(form))

    assert html.count('<fieldset class="form-editor-row"') == 4
    assert '<legend>Field 2<span class="fe-legend-name">: region</span></legend>' in html
    assert 'id="fe-0-name" data-key="name" value="version"' in html
    assert 'id="fe-0-pattern" data-key="pattern" value="^\\d+$"' in html
    assert '<option value="choice" selected>Choice</option>' in html
    assert re.search(r'id="fe-1-choices"[^>]*>eu\nus</textarea>', html)
    assert re.search(r'id="fe-2-default-lines"[^>]*>b</textarea>', html)
    assert '<option value="true" selected>Ticked</option>' in html
    # Up is off for the first row, down for the last; each row may be removed.
    assert re.search(r'id="fe-0-up" data-move="-1" disabled', html)
    assert re.search(r'id="fe-3-down" data-move="1" disabled', html)
    assert html.count(">Remove</button>") == 4
    assert ">Add a field</button>" in html


def test_the_rows_wait_while_the_json_does_not_read(ops_client):
    html = _fields(ops_client, '[{"name": "version", "type": "string"')

    assert "The JSON is not a list of fields just now" in html
    assert "form-editor-row" not in html and "Add a field" not in html


def test_the_action_page_renders_the_rows_of_its_form(ops_client):
    html = ops_client.get(reverse("admin:catalog_action_add")).content.decode()

    assert f'hx-post="{reverse(FIELDS)}" hx-trigger="input delay:400ms from:#id_form"' in html
    assert "/static/js/form-editor.js" in html and "/static/css/form-editor.css" in html
    assert "No fields: the button runs at once" in html and ">Add a field</button>" in html


def test_the_rows_are_for_ops_only(dev):
    response = page_client(dev).post(reverse(FIELDS), {"form": "[]"})

    assert response.status_code == 302 and "/login/" in response["Location"]


def test_a_form_sent_back_with_a_mistake_shows_the_rows_of_what_was_sent(ops_client):
    version, environment = PlaybookVersionFactory(), EnvironmentFactory(slug="test")
    sent = [{"name": "region", "type": "choice", "choices": []}]

    response = ops_client.post(
        reverse("admin:catalog_action_add"),
        _action_post(version, environment, form=json.dumps(sent), version_field=""),
    )

    html = response.content.decode()
    assert "fields[0].choices: a choice field needs a non-empty list" in html
    assert 'id="fe-0-name" data-key="name" value="region"' in html
    response = ops_client.post(
        reverse("admin:catalog_action_add"),
        _action_post(version, environment, form="[{", version_field=""),
    )
    assert "The JSON is not a list of fields just now" in response.content.decode()
