"""Ops edit an action's form in the admin, as JSON or field by field, and watch the preview
follow (Chromium, htmx, static/js/form-editor.js)."""

import json
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import expect

from tests.browser.a11y import assert_accessible
from tests.browser.helpers import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_preview_follows_the_json_as_ops_type(page, live_server, demo):
    sign_in(page, live_server.url, "ops", "pushbutton-ops")
    page.goto(f"{live_server.url}/admin/catalog/action/{demo.deploy.pk}/change/")
    preview = page.locator("#form-preview")
    # The action's own form, as developers see it, once the page has loaded.
    expect(preview.get_by_label("Version")).to_be_visible()

    editor = page.locator("textarea[name=form]")
    editor.fill(
        '[\n  {"name": "region", "type": "choice",\n   "required": true\n   "choices": ["eu"]}\n]'
    )
    expect(preview).to_contain_text("line 4, column 4: Expecting ',' delimiter")

    editor.fill('[{"name": "region", "type": "choice", "required": true, "choices": ["eu", "us"]}]')
    region = preview.get_by_label("Region")
    expect(region).to_be_visible()
    expect(region.locator("option:checked")).to_have_text("Choose…")


def _definition(page) -> list[dict]:
    return json.loads(page.locator("textarea[name=form]").input_value())


def _screenshot(page, name: str, width: int) -> None:
    """The editor at `width` px, kept under VAR_DIR/screenshots for a person to look at."""
    page.set_viewport_size({"width": width, "height": 900})
    path = Path(settings.VAR_DIR) / "screenshots" / f"{name}-{width}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.locator(".field-form").screenshot(path=path, animations="disabled", caret="hide")
    # Nothing of it beyond the screen's edge: the rows and the JSON fit a phone.
    right = page.locator(".form-editor").evaluate("el => el.getBoundingClientRect().right")
    assert right <= width, f"the editor reaches {right}px on a {width}px screen"


def test_ops_add_a_choice_field_without_writing_json(page, live_server, demo):
    sign_in(page, live_server.url, "ops", "pushbutton-ops")
    page.goto(f"{live_server.url}/admin/catalog/action/{demo.deploy.pk}/change/")
    fields = page.locator("#form-fields")
    preview = page.locator("#form-preview")
    expect(fields.get_by_label("Name")).to_have_value("version")
    expect(preview.get_by_label("Version")).to_be_visible()

    fields.get_by_role("button", name="Add a field").click()
    new = page.locator("#fe-1")
    expect(new.get_by_label("Name")).to_be_focused()
    new.get_by_label("Name").fill("region")
    new.get_by_label("Label").fill("Region")
    new.get_by_label("Type").select_option(label="Choice")
    new.get_by_label("Required").check()
    new.get_by_label("Choices, one a line", exact=True).fill("eu\nus")
    new.get_by_label("Help text").fill("Where it runs")

    region = preview.get_by_label("Region")
    expect(region.locator("option")).to_have_text(["Choose…", "eu", "us"])
    expect(preview).to_contain_text("Where it runs")
    assert _definition(page)[1] == {
        "name": "region", "label": "Region", "type": "choice", "required": True,
        "choices": ["eu", "us"], "help": "Where it runs",
    }  # fmt: skip
    # Only what a choice field has is offered: no pattern, no minimum.
    expect(new.get_by_label("Pattern (regular expression)")).to_be_hidden()
    expect(new.get_by_label("Minimum")).to_be_hidden()

    # Moved first: the rows, the JSON and the preview follow; the focus stays on the button.
    new.get_by_role("button", name="Move up").click()
    expect(page.locator("#fe-0").get_by_label("Name")).to_have_value("region")
    expect(page.locator("#fe-0-name")).to_be_focused()
    assert [f["name"] for f in _definition(page)] == ["region", "version"]
    expect(preview.locator("label").first).to_contain_text("Region")

    # A mistake is named in the preview by line and field, and on the field's row.
    first = page.locator("#fe-0")
    first.get_by_label("Choices, one a line", exact=True).fill("eu\neu")
    expect(preview).to_contain_text("line 2, fields[0].choices: choices repeat.")
    expect(first.locator(".fe-errors")).to_contain_text("fields[0].choices: choices repeat.")
    assert_accessible(page, what="the form editor with a mistake", within=".form-editor")
    first.get_by_label("Choices, one a line", exact=True).fill("eu\nus")
    expect(first.locator(".fe-errors")).to_be_hidden()
    expect(preview.get_by_label("Region")).to_be_visible()

    # Typed in the JSON, by a power user: the rows follow once it reads as a list again.
    editor = page.locator("textarea[name=form]")
    definition = _definition(page)
    definition[1]["label"] = "Release"
    editor.fill(json.dumps(definition)[:-1])
    expect(fields).to_contain_text("The JSON is not a list of fields just now")
    editor.fill(json.dumps(definition))
    expect(page.locator("#fe-1").get_by_label("Label")).to_have_value("Release")

    assert_accessible(page, what="the form editor", within=".form-editor")
    for width in (1280, 390):
        _screenshot(page, "form-editor", width)
    page.set_viewport_size({"width": 1280, "height": 900})

    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    demo.deploy.refresh_from_db()
    assert [f["name"] for f in demo.deploy.form] == ["region", "version"]

    # The run form developers see has the field, as the preview showed it.
    page.context.clear_cookies()
    sign_in(page, live_server.url, "dev", "pushbutton-dev")
    page.goto(f"{live_server.url}/services/hello-web/deploy/test/")
    expect(page.get_by_label("Region").locator("option")).to_have_text(["Choose…", "eu", "us"])
    expect(page.get_by_label("Release")).to_be_visible()


def test_ops_take_a_fields_choices_from_git_and_remove_a_field(page, live_server, demo):
    sign_in(page, live_server.url, "ops", "pushbutton-ops")
    page.goto(f"{live_server.url}/admin/catalog/action/{demo.deploy.pk}/change/")
    preview = page.locator("#form-preview")
    expect(preview.get_by_label("Version")).to_be_visible()

    # Added at once after typing in the JSON, before the rows follow it: what was typed stays.
    definition = _definition(page)
    definition[0]["label"] = "Release"
    page.locator("textarea[name=form]").fill(json.dumps(definition))
    page.get_by_role("button", name="Add a field").click()
    new = page.locator("#fe-1")
    expect(new.get_by_label("Name")).to_be_focused()
    expect(page.locator("#fe-0").get_by_label("Label")).to_have_value("Release")
    assert _definition(page)[0]["label"] == "Release"
    new.get_by_label("Name").fill("tag")
    new.get_by_label("Type").select_option(label="Choice")
    new.get_by_label("Choices from").select_option(label="A git repository's tags or branches")
    expect(new.get_by_label("Choices, one a line", exact=True)).to_be_hidden()
    new.get_by_label("Repository (URL or path)").fill("-oops")
    expect(preview).to_contain_text("fields[1]: choices_from.git must be a repository URL or path.")
    expect(new.locator(".fe-errors")).to_be_visible()
    for width in (1280, 390):
        _screenshot(page, "form-editor-git-mistake", width)
    page.set_viewport_size({"width": 1280, "height": 900})

    new.get_by_label("Repository (URL or path)").fill("https://git.example/app.git")
    new.get_by_label("Matching (glob)").fill("v*")
    new.get_by_label("Free text when the list cannot be fetched").check()
    expect(new.locator(".fe-errors")).to_be_hidden()
    assert _definition(page)[1] == {
        "name": "tag", "type": "choice", "allow_free_text": True,
        "choices_from": {"git": "https://git.example/app.git", "refs": "tags", "match": "v*"},
    }  # fmt: skip

    # An integer's bounds and default are written as numbers; one that is not is named.
    new.get_by_label("Type").select_option(label="Integer")
    expect(new.get_by_label("Repository (URL or path)")).to_be_hidden()
    new.get_by_label("Minimum").fill("1")
    new.get_by_label("Maximum").fill("9")
    new.get_by_label("Default", exact=True).fill("3")
    expect(preview.get_by_label("Tag")).to_have_value("3")
    assert _definition(page)[1] == {
        "name": "tag", "type": "integer", "default": 3, "min": 1, "max": 9,
    }  # fmt: skip
    new.get_by_label("Maximum").fill("nine")
    expect(new.locator(".fe-errors")).to_contain_text("fields[1].max: must be an integer.")

    # Removed: the focus goes to the field that took its place (here, the one before).
    page.locator("#fe-0").get_by_role("button", name="Remove").click()
    expect(page.locator("#fe-0").get_by_label("Name")).to_have_value("tag")
    expect(page.locator("#fe-0-name")).to_be_focused()
    assert [f["name"] for f in _definition(page)] == ["tag"]
    expect(preview.get_by_label("Release")).to_have_count(0)
