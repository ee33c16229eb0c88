"""An action's form: its definition, and parameters checked against it."""

import pytest
from django.http import QueryDict

from apps.catalog.constants import ParameterInput
from apps.catalog.parameters import (
    MASK,
    ParameterError,
    form_definition_errors,
    parameters_clean,
    parameters_form_class,
    parameters_masked,
)

VERSION = {"name": "version", "type": "string", "required": True, "pattern": r"\d+\.\d+\.\d+"}
REPLICAS = {"name": "replicas", "type": "integer", "min": 1, "max": 10, "default": 2}
MIGRATE = {"name": "migrate", "type": "boolean", "default": True}
REGION = {"name": "region", "type": "choice", "choices": ["eu", "us"], "default": "eu"}
FEATURES = {"name": "features", "type": "multi-choice", "choices": ["cache", "cdn", "search"]}
TOKEN = {"name": "token", "type": "secret", "pattern": r"[A-Za-z0-9]{8,}"}
FORM = [VERSION, REPLICAS, MIGRATE, REGION, FEATURES, TOKEN]


def _errors(fields, data, *, given_as=ParameterInput.JSON) -> dict[str, list[str]]:
    with pytest.raises(ParameterError) as caught:
        parameters_clean(fields, data, given_as=given_as)
    return caught.value.errors


def _post(**values) -> QueryDict:
    """A page POST: every value a string, a multi-choice sent once per ticked box."""
    data = QueryDict(mutable=True)
    data["csrfmiddlewaretoken"] = "x" * 32
    for name, value in values.items():
        if isinstance(value, list):
            data.setlist(name, value)
        else:
            data[name] = value
    return data


# --- parameters from the API --------------------------------------------------
def test_it_cleans_every_field_type_from_the_api():
    clean = parameters_clean(
        FORM,
        {
            "version": "1.2.3",
            "replicas": 4,
            "migrate": False,
            "region": "us",
            "features": ["cdn", "search"],
            "token": "s3cretS3cret",
        },
        given_as=ParameterInput.JSON,
    )

    assert clean == {
        "version": "1.2.3",
        "replicas": 4,
        "migrate": False,
        "region": "us",
        "features": ["cdn", "search"],
        "token": "s3cretS3cret",
    }


def test_it_applies_defaults_for_missing_optional_keys_from_the_api():
    clean = parameters_clean(FORM, {"version": "1.2.3"}, given_as=ParameterInput.JSON)

    assert clean == {
        "version": "1.2.3",
        "replicas": 2,
        "migrate": True,
        "region": "eu",
        "features": [],
        "token": "",
    }


def test_it_keeps_a_value_given_over_the_default():
    clean = parameters_clean(
        [MIGRATE, REPLICAS], {"migrate": False, "replicas": 7}, given_as=ParameterInput.JSON
    )

    assert clean == {"migrate": False, "replicas": 7}


def test_it_accepts_no_parameters_for_an_empty_form():
    assert parameters_clean([], None, given_as=ParameterInput.JSON) == {}
    assert parameters_clean([], {}, given_as=ParameterInput.JSON) == {}


def test_it_refuses_a_missing_required_field():
    errors = _errors(FORM, {"replicas": 3})

    assert errors == {"version": ["This field is required."]}


@pytest.mark.parametrize("value", ["", None])
def test_it_refuses_an_empty_required_field(value):
    assert _errors([VERSION], {"version": value}) == {"version": ["This field is required."]}


@pytest.mark.parametrize("value", ["1.2", "v1.2.3", "1.2.3; rm -rf /", "1.2.3\n4"])
def test_it_refuses_a_string_that_does_not_match_the_whole_pattern(value):
    errors = _errors([VERSION], {"version": value})

    assert errors == {"version": [r"Must match the pattern \d+\.\d+\.\d+."]}


def test_it_reads_an_unanchored_pattern_as_the_whole_value():
    field = {"name": "tag", "type": "string", "pattern": "[0-9.]+"}

    assert parameters_clean([field], {"tag": "1.0"}, given_as=ParameterInput.JSON) == {"tag": "1.0"}
    assert _errors([field], {"tag": "1.0 && reboot"}) == {
        "tag": ["Must match the pattern [0-9.]+."]
    }


def test_it_refuses_a_string_parameter_that_is_not_text():
    assert _errors([VERSION], {"version": 123}) == {"version": ["Must be text."]}


@pytest.mark.parametrize(("value", "expected"), [(1, 1), (10, 10), ("5", 5)])
def test_it_accepts_integers_within_min_and_max(value, expected):
    assert parameters_clean([REPLICAS], {"replicas": value}, given_as=ParameterInput.JSON) == {
        "replicas": expected
    }


def test_it_refuses_an_integer_below_min_or_above_max():
    assert _errors([REPLICAS], {"replicas": 0}) == {
        "replicas": ["Ensure this value is greater than or equal to 1."]
    }
    assert _errors([REPLICAS], {"replicas": 11}) == {
        "replicas": ["Ensure this value is less than or equal to 10."]
    }


@pytest.mark.parametrize("value", ["abc", 1.5, 2.0, True, False, [3], {"n": 3}, "1e3"])
def test_it_refuses_an_integer_parameter_that_is_not_a_whole_number(value):
    assert _errors([REPLICAS], {"replicas": value}) == {"replicas": ["Enter a whole number."]}


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), ("true", True), ("false", False), ("no", False), (None, False)],
)
def test_it_accepts_true_or_false_for_a_boolean(value, expected):
    assert parameters_clean([MIGRATE], {"migrate": value}, given_as=ParameterInput.JSON) == {
        "migrate": expected
    }


@pytest.mark.parametrize("value", ["maybe", "nope", 1, 0, [True], {"x": 1}])
def test_it_refuses_a_boolean_that_is_neither_true_nor_false(value):
    assert _errors([MIGRATE], {"migrate": value}) == {"migrate": ["Must be true or false."]}


def test_it_refuses_a_choice_outside_the_choices():
    errors = _errors([REGION], {"region": "asia"})

    assert errors == {
        "region": ["Select a valid choice. asia is not one of the available choices."]
    }


def test_it_refuses_a_multi_choice_with_one_bad_item():
    errors = _errors([FEATURES], {"features": ["cache", "teleport"]})

    assert errors == {
        "features": ["Select a valid choice. teleport is not one of the available choices."]
    }


def test_it_refuses_a_multi_choice_given_as_a_plain_string():
    assert _errors([FEATURES], {"features": "cache"}) == {
        "features": ["Must be a list of choices."]
    }


def test_it_refuses_a_required_multi_choice_with_no_item():
    field = {**FEATURES, "required": True}

    assert _errors([field], {"features": []}) == {"features": ["This field is required."]}


def test_it_refuses_a_secret_that_does_not_match_its_pattern():
    errors = _errors([TOKEN], {"token": "short"})

    assert errors == {"token": ["Must match the pattern [A-Za-z0-9]{8,}."]}


def test_it_keeps_a_secret_exactly_as_given():
    field = {"name": "password", "type": "secret"}

    assert parameters_clean([field], {"password": " pa ss "}, given_as=ParameterInput.JSON) == {
        "password": " pa ss "
    }


def test_it_refuses_unknown_keys_one_message_each():
    errors = _errors(FORM, {"version": "1.2.3", "debug": True, "ansible_become": "yes"})

    assert errors == {"debug": ["Unknown parameter."], "ansible_become": ["Unknown parameter."]}


@pytest.mark.parametrize("data", [["version", "1.2.3"], "version=1.2.3", 42])
def test_it_refuses_parameters_that_are_not_an_object(data):
    assert _errors(FORM, data) == {"parameters": ["Must be an object of field names to values."]}


def test_it_reports_every_bad_field_at_once():
    errors = _errors(FORM, {"version": "x", "replicas": "many", "region": "mars"})

    assert set(errors) == {"version", "replicas", "region"}


def test_it_says_which_fields_are_wrong_in_the_exception_text():
    with pytest.raises(ParameterError, match=r"replicas: Enter a whole number\."):
        parameters_clean([REPLICAS], {"replicas": "many"}, given_as=ParameterInput.JSON)


# --- parameters from a page ------------------------------------------------------
def test_it_cleans_a_page_post():
    data = _post(
        version="1.2.3",
        replicas="3",
        migrate="on",
        region="us",
        features=["cache", "search"],
        token="s3cretS3cret",
    )

    clean = parameters_clean(FORM, data, given_as=ParameterInput.FORM)

    assert clean == {
        "version": "1.2.3",
        "replicas": 3,
        "migrate": True,
        "region": "us",
        "features": ["cache", "search"],
        "token": "s3cretS3cret",
    }


def test_it_reads_an_unchecked_checkbox_as_false_even_with_a_true_default():
    # A box left unchecked is not sent at all; the page showed it checked by default.
    clean = parameters_clean(
        FORM, _post(version="1.2.3", region="eu"), given_as=ParameterInput.FORM
    )

    assert clean["migrate"] is False
    assert clean["features"] == []


def test_it_ignores_the_csrf_token_and_other_page_fields():
    clean = parameters_clean(
        [VERSION], _post(version="1.2.3", check="1"), given_as=ParameterInput.FORM
    )

    assert clean == {"version": "1.2.3"}


def test_it_refuses_bad_values_from_a_page():
    data = _post(version="1.2", replicas="abc", migrate="maybe", region="eu", features=["x"])

    errors = _errors(FORM, data, given_as=ParameterInput.FORM)

    assert errors == {
        "version": [r"Must match the pattern \d+\.\d+\.\d+."],
        "replicas": ["Enter a whole number."],
        "migrate": ["Must be true or false."],
        "features": ["Select a valid choice. x is not one of the available choices."],
    }


def test_it_requires_fields_on_a_page_too():
    errors = _errors(FORM, _post(region="eu"), given_as=ParameterInput.FORM)

    assert errors == {"version": ["This field is required."]}


# --- the form a page shows ------------------------------------------------------
def test_it_builds_a_page_form_with_labels_defaults_and_a_hidden_secret():
    form = parameters_form_class(FORM)()
    html = str(form)

    assert form.fields["replicas"].initial == 2
    assert form.fields["replicas"].label == "Replicas"
    assert form.fields["version"].required is True
    assert 'name="migrate" id="id_migrate" checked' in html
    assert 'type="password" name="token"' in html


def test_it_shows_a_checkbox_prefilled_with_false_unchecked():
    html = str(parameters_form_class([MIGRATE])(initial={"migrate": "false"}))

    assert 'name="migrate"' in html
    assert "checked" not in html


# --- masking --------------------------------------------------------------------
def test_it_masks_secret_values():
    values = {"version": "1.2.3", "token": "s3cretS3cret", "replicas": 2}

    masked = parameters_masked(FORM, values)

    assert masked == {"version": "1.2.3", "token": MASK, "replicas": 2}
    assert "s3cretS3cret" not in str(masked)
    assert values["token"] == "s3cretS3cret"


def test_it_leaves_an_empty_secret_empty():
    assert parameters_masked(FORM, {"token": ""}) == {"token": ""}
    assert parameters_masked(FORM, {"token": None}) == {"token": None}


# --- the form definition --------------------------------------------------------
def test_it_accepts_a_well_formed_definition():
    assert form_definition_errors(FORM) == []
    assert form_definition_errors([]) == []


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"name": "version", "type": "string"}, "The form must be a list of fields."),
        (None, "The form must be a list of fields."),
        (["version"], "fields[0]: must be an object."),
        (
            [{"name": "version", "type": "string"}, {"name": "version", "type": "integer"}],
            "fields[1].name: 'version' is defined twice.",
        ),
        (
            [{"name": "Version", "type": "string"}],
            "fields[0].name: must be lower-case letters, digits and '_' (got 'Version').",
        ),
        (
            [{"name": "release-tag", "type": "string"}],
            "fields[0].name: must be lower-case letters, digits and '_' (got 'release-tag').",
        ),
        (
            [{"name": "version\n", "type": "string"}],
            "fields[0].name: must be lower-case letters, digits and '_' (got 'version\\n').",
        ),
        (
            [{"type": "string"}],
            "fields[0].name: must be lower-case letters, digits and '_' (got None).",
        ),
        (
            [{"name": "ansible_become", "type": "boolean"}],
            "fields[0].name: names starting with 'ansible_' or 'pushbutton_' are reserved.",
        ),
        (
            [{"name": "pushbutton_run", "type": "string"}],
            "fields[0].name: names starting with 'ansible_' or 'pushbutton_' are reserved.",
        ),
        (
            [{"name": "version", "type": "text"}],
            "fields[0].type: must be one of string, integer, boolean, choice, "
            "multi-choice, secret (got 'text').",
        ),
        (
            [{"name": "version", "type": "string", "placeholder": "1.0.0", "size": 5}],
            "fields[0]: unknown keys placeholder, size.",
        ),
        (
            [{"name": "region", "type": "choice"}],
            "fields[0].choices: a choice field needs a non-empty list of text choices.",
        ),
        (
            [{"name": "region", "type": "multi-choice", "choices": []}],
            "fields[0].choices: a multi-choice field needs a non-empty list of text choices.",
        ),
        (
            [{"name": "region", "type": "choice", "choices": ["eu", "eu"]}],
            "fields[0].choices: choices repeat.",
        ),
        (
            [{"name": "region", "type": "string", "choices": ["eu"]}],
            "fields[0].choices: only choice fields have choices.",
        ),
        (
            [{"name": "version", "type": "string", "pattern": "[0-9"}],
            "fields[0].pattern: not a valid regular expression "
            "(unterminated character set at position 0).",
        ),
        (
            [{"name": "replicas", "type": "integer", "pattern": "[0-9]+"}],
            "fields[0].pattern: only string and secret fields have a pattern.",
        ),
        (
            [{"name": "replicas", "type": "integer", "min": 5, "max": 1}],
            "fields[0].min: greater than max.",
        ),
        (
            [{"name": "replicas", "type": "integer", "min": "1"}],
            "fields[0].min: must be an integer.",
        ),
        (
            [{"name": "version", "type": "string", "min": 1}],
            "fields[0].min: only integer fields have min.",
        ),
        (
            [{"name": "migrate", "type": "boolean", "max": 1}],
            "fields[0].max: only integer fields have max.",
        ),
        (
            [{"name": "version", "type": "string", "required": "yes"}],
            "fields[0].required: must be true or false.",
        ),
        (
            [{"name": "version", "type": "string", "label": 5}],
            "fields[0].label: must be text.",
        ),
        (
            [{"name": "token", "type": "secret", "default": "hunter2"}],
            "fields[0].default: a secret field cannot have a default.",
        ),
    ],
)
def test_it_explains_a_malformed_definition(form, message):
    assert form_definition_errors(form) == [message]


@pytest.mark.parametrize(
    ("field", "message"),
    [
        (
            {"name": "version", "type": "string", "pattern": r"\d+", "default": "latest"},
            r"fields[0].default: not valid (Must match the pattern \d+.).",
        ),
        (
            {"name": "replicas", "type": "integer", "max": 3, "default": 5},
            "fields[0].default: not valid (Ensure this value is less than or equal to 3.).",
        ),
        (
            {"name": "replicas", "type": "integer", "default": "two"},
            "fields[0].default: not valid (Enter a whole number.).",
        ),
        (
            {"name": "migrate", "type": "boolean", "default": "maybe"},
            "fields[0].default: not valid (Must be true or false.).",
        ),
        (
            {"name": "region", "type": "choice", "choices": ["eu", "us"], "default": "asia"},
            "fields[0].default: not valid "
            "(Select a valid choice. asia is not one of the available choices.).",
        ),
        (
            {"name": "features", "type": "multi-choice", "choices": ["cdn"], "default": "cdn"},
            "fields[0].default: not valid (Must be a list of choices.).",
        ),
    ],
)
def test_it_refuses_a_default_that_fails_its_own_rules(field, message):
    assert form_definition_errors([field]) == [message]


def test_it_checks_every_field_even_after_an_earlier_one_is_wrong():
    errors = form_definition_errors(
        [
            {"name": "version", "type": "text"},
            {"name": "replicas", "type": "integer", "default": "two"},
        ]
    )

    assert errors == [
        "fields[0].type: must be one of string, integer, boolean, choice, "
        "multi-choice, secret (got 'text').",
        "fields[1].default: not valid (Enter a whole number.).",
    ]


def test_it_accepts_good_defaults_of_every_kind():
    form = [
        {"name": "version", "type": "string", "pattern": r"\d+\.\d+\.\d+", "default": "1.0.0"},
        {"name": "replicas", "type": "integer", "min": 1, "max": 3, "default": 3},
        {"name": "migrate", "type": "boolean", "default": False},
        {"name": "region", "type": "choice", "choices": ["eu", "us"], "default": "us"},
        {"name": "features", "type": "multi-choice", "choices": ["a", "b"], "default": ["b"]},
    ]

    assert form_definition_errors(form) == []


@pytest.mark.parametrize("name", ["hostvars", "inventory_hostname", "omit", "group_names"])
def test_it_refuses_a_field_named_like_an_ansible_variable(name):
    errors = form_definition_errors([{"name": name, "type": "string"}])
    assert any("one of Ansible's own variables" in e for e in errors)
