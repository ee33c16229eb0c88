"""An action's form: checking its definition, and validating parameters against it.

The definition is a list of fields (dicts). The same Django form, built from
that definition, renders the page and validates both page and API input.
"""

import re
from collections.abc import Mapping

from django import forms
from django.core.exceptions import ValidationError

from apps.catalog.choices import SourcedChoices, source_errors
from apps.catalog.constants import FieldType, ParameterInput

NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}")
FIELD_KEYS = {
    "name",
    "label",
    "type",
    "required",
    "default",
    "choices",
    "pattern",
    "min",
    "max",
    "help",
    # Choices from a git repository or an HTTP(S) endpoint (apps/catalog/choices.py).
    "choices_from",
    "allow_free_text",
}
# Extra vars override everything: a form field must not shadow Ansible's own variables.
ANSIBLE_MAGIC_VARS = frozenset(
    {
        "hostvars", "groups", "group_names", "inventory_hostname", "inventory_hostname_short",
        "inventory_dir", "inventory_file", "omit", "play_hosts", "playbook_dir", "role_name",
        "role_names", "role_path", "environment", "vars", "item", "ansible_facts", "lookup",
    }
)  # fmt: skip
MASK = "••••"


class ParameterError(Exception):
    """Parameters that do not fit the form: a list of messages per field."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


def form_definition_errors(form) -> list[str]:
    """What is wrong with a form definition, as messages Ops can act on."""
    if not isinstance(form, list):
        return ["The form must be a list of fields."]
    errors: list[str] = []
    seen: set[str] = set()
    for index, field in enumerate(form):
        errors += _field_errors(field, index=index, seen=seen)
    return errors


def _field_errors(field, *, index: int, seen: set[str]) -> list[str]:
    """What is wrong with one field of a form definition (`seen`: the names before it).

    Each message starts with where it is, as a path into the JSON: "fields[2].choices: …"
    (fields counted from 0, as in the list)."""
    where = f"fields[{index}]"
    if not isinstance(field, dict):
        return [f"{where}: must be an object."]
    errors = _name_errors(field.get("name"), where=where, seen=seen)
    if unknown := set(field) - FIELD_KEYS:
        errors.append(f"{where}: unknown keys {', '.join(sorted(unknown))}.")
    kind = field.get("type")
    if kind not in FieldType.values:
        errors.append(f"{where}.type: must be one of {', '.join(FieldType.values)} (got {kind!r}).")
        return errors
    errors += _rule_errors(field, kind=kind, where=where)
    # A default is only worth checking once the rest of its field is sound.
    if "default" in field and not errors:
        if "choices_from" in field:
            if not isinstance(field["default"], str):
                errors.append(f"{where}.default: must be text.")
        elif kind == FieldType.SECRET:
            errors.append(f"{where}.default: a secret field cannot have a default.")
        else:
            try:
                _django_field({**field, "required": False}).clean(field["default"])
            except ValidationError as exc:
                errors.append(f"{where}.default: not valid ({' '.join(exc.messages)}).")
    return errors


def _name_errors(name, *, where: str, seen: set[str]) -> list[str]:
    """What is wrong with a field's name."""
    where = f"{where}.name"
    if not isinstance(name, str) or not NAME.fullmatch(name):
        return [f"{where}: must be lower-case letters, digits and '_' (got {name!r})."]
    errors = []
    if name in ANSIBLE_MAGIC_VARS:
        errors.append(f"{where}: {name!r} is one of Ansible's own variables.")
    if name.startswith("ansible_") or name.startswith("pushbutton_"):
        errors.append(f"{where}: names starting with 'ansible_' or 'pushbutton_' are reserved.")
    if name in seen:
        errors.append(f"{where}: {name!r} is defined twice.")
    seen.add(name)
    return errors


def _rule_errors(field: dict, *, kind: str, where: str) -> list[str]:
    """What is wrong with the keys of a field of a known type: required, texts, choices,
    pattern, min and max."""
    errors = []
    if "required" in field and not isinstance(field["required"], bool):
        errors.append(f"{where}.required: must be true or false.")
    for key in ("label", "help"):
        if key in field and not isinstance(field[key], str):
            errors.append(f"{where}.{key}: must be text.")
    choices = field.get("choices")
    if "choices_from" in field or "allow_free_text" in field:
        errors += _sourced_errors(field, kind=kind, where=where)
    elif kind in (FieldType.CHOICE, FieldType.MULTI_CHOICE):
        if not (isinstance(choices, list) and choices and all(isinstance(c, str) for c in choices)):
            errors.append(
                f"{where}.choices: a {kind} field needs a non-empty list of text choices."
            )
        elif len(set(choices)) != len(choices):
            errors.append(f"{where}.choices: choices repeat.")
    elif choices is not None:
        errors.append(f"{where}.choices: only choice fields have choices.")
    if "pattern" in field:
        if kind not in (FieldType.STRING, FieldType.SECRET):
            errors.append(f"{where}.pattern: only string and secret fields have a pattern.")
        else:
            try:
                re.compile(field["pattern"])
            except (re.error, TypeError) as exc:
                errors.append(f"{where}.pattern: not a valid regular expression ({exc}).")
    for key in ("min", "max"):
        if key in field:
            if kind != FieldType.INTEGER:
                errors.append(f"{where}.{key}: only integer fields have {key}.")
            elif not isinstance(field[key], int) or isinstance(field[key], bool):
                errors.append(f"{where}.{key}: must be an integer.")
    low, high = field.get("min"), field.get("max")
    if isinstance(low, int) and isinstance(high, int) and low > high:
        errors.append(f"{where}.min: greater than max.")
    return errors


def _sourced_errors(field: dict, *, kind: str, where: str) -> list[str]:
    """What is wrong with a field whose choices come from a source (choices_from)."""
    if kind != FieldType.CHOICE:
        return [f"{where}: only choice fields take their choices from a source."]
    if "choices_from" not in field:
        return [f"{where}: allow_free_text needs choices_from."]
    errors = source_errors(field["choices_from"], where=where)
    if "choices" in field:
        errors.append(f"{where}: give choices or choices_from, not both.")
    if not isinstance(field.get("allow_free_text", False), bool):
        errors.append(f"{where}: allow_free_text must be true or false.")
    return errors


BOOLEAN_TRUE = {"true", "on", "1", "yes"}
BOOLEAN_FALSE = {"false", "off", "0", "no", ""}


def _checked(value) -> bool:
    if isinstance(value, str):
        return value.lower() in BOOLEAN_TRUE
    return value is True


class StrictCheckboxInput(forms.CheckboxInput):
    """A checkbox that hands the value sent to the field as it is.

    Django's checkbox turns any non-empty value ("no", "maybe", 1) into True
    before the field sees it; here only a box left unchecked (nothing sent)
    means false, and the field decides the rest.
    """

    def __init__(self, attrs=None):
        super().__init__(attrs, check_test=_checked)

    def value_from_datadict(self, data, files, name):
        if name not in data:
            return False
        return data.get(name)


class StrictBooleanField(forms.BooleanField):
    """true/false from JSON or a checkbox; anything else is an error, not a guess."""

    widget = StrictCheckboxInput

    def to_python(self, value):
        if isinstance(value, bool):
            return value
        if value is None:
            return False
        if isinstance(value, str) and value.lower() in BOOLEAN_TRUE | BOOLEAN_FALSE:
            return value.lower() in BOOLEAN_TRUE
        raise ValidationError("Must be true or false.", code="invalid")


class StrictIntegerField(forms.IntegerField):
    def to_python(self, value):
        if isinstance(value, bool | float | list | dict):
            raise ValidationError("Enter a whole number.", code="invalid")
        return super().to_python(value)


class TextField(forms.CharField):
    def to_python(self, value):
        if value is not None and not isinstance(value, str):
            raise ValidationError("Must be text.", code="invalid")
        return super().to_python(value)


class ListChoiceField(forms.MultipleChoiceField):
    def to_python(self, value):
        if isinstance(value, str):
            raise ValidationError("Must be a list of choices.", code="invalid_list")
        return super().to_python(value)


def _pattern_validator(pattern: str):
    # The whole value must match, as in an HTML pattern attribute: "[0-9.]+"
    # must not let "1.0; rm -rf /" through because it starts with digits.
    regex = re.compile(pattern)

    def validate(value):
        if not regex.fullmatch(value):
            raise ValidationError(f"Must match the pattern {pattern}.", code="invalid")

    return validate


class UnavailableChoiceField(forms.ChoiceField):
    """A choice field whose source did not answer: nothing can be chosen, and it says why."""

    def __init__(self, *, reason: str, **kwargs):
        super().__init__(choices=[("", "(no choices: the list could not be fetched)")], **kwargs)
        self.source_error = reason

    def validate(self, value):
        # An optional field may stay empty; nothing else can be checked.
        if value or self.required:
            raise ValidationError(self.source_error, code="unavailable")


def _sourced_field(field: dict, sourced: SourcedChoices | None, common: dict) -> forms.Field:
    """A choice field offering what its source answered. A source that did not answer
    leaves a text box if the field allows free text, else nothing to choose."""
    if sourced is None:
        sourced = SourcedChoices(error="The list of choices was not fetched.")
    if not sourced.error:
        # An empty first option: nothing is chosen until someone chooses.
        return forms.ChoiceField(choices=[("", "Choose…"), *sourced.choices], **common)
    reason = f"The list of choices could not be fetched: {sourced.error}"
    if field.get("allow_free_text"):
        text = TextField(max_length=1000, **common)
        text.source_error = f"{reason} Type the value instead."
        return text
    return UnavailableChoiceField(reason=reason, **common)


def _django_field(field: dict, sourced: SourcedChoices | None = None) -> forms.Field:
    kind = field["type"]
    common = {
        "label": field.get("label") or field["name"].replace("_", " ").capitalize(),
        "help_text": field.get("help", ""),
        "required": bool(field.get("required", False)),
        "initial": field.get("default"),
    }
    pattern_validators = [_pattern_validator(field["pattern"])] if field.get("pattern") else []
    if kind == FieldType.STRING:
        return TextField(max_length=1000, validators=pattern_validators, **common)
    if kind == FieldType.SECRET:
        return TextField(
            max_length=4000,
            strip=False,  # a password's spaces are part of it
            validators=pattern_validators,
            widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
            **common,
        )
    if kind == FieldType.INTEGER:
        return StrictIntegerField(min_value=field.get("min"), max_value=field.get("max"), **common)
    if kind == FieldType.BOOLEAN:
        # A checkbox left empty is "false", so a boolean is never missing.
        return StrictBooleanField(**{**common, "required": False})
    if "choices_from" in field:
        return _sourced_field(field, sourced, common)
    choices = [(c, c) for c in field["choices"]]
    if kind == FieldType.CHOICE:
        if "default" not in field:
            # No option is picked for the person: they choose (a required field stays empty).
            choices = [("", "Choose…"), *choices]
        return forms.ChoiceField(choices=choices, **common)
    return ListChoiceField(choices=choices, widget=forms.CheckboxSelectMultiple, **common)


def parameters_form_class(
    fields: list[dict], sourced: dict[str, SourcedChoices] | None = None
) -> type[forms.Form]:
    """A Django form class for an action's form definition; `sourced`: what the sources
    of its choices_from fields answered, by field name (apps/catalog/choices.py)."""
    sourced = sourced or {}
    return type(
        "ParametersForm",
        (forms.Form,),
        {f["name"]: _django_field(f, sourced.get(f["name"])) for f in fields},
    )


def sourced_fields(fields: list[dict]) -> list[dict]:
    """The fields whose choices come from a source."""
    return [f for f in fields if "choices_from" in f]


def parameters_clean(
    fields: list[dict],
    data,
    *,
    given_as: str,
    sourced: dict[str, SourcedChoices] | None = None,
) -> dict:
    """Validate parameters against the form; return clean values or raise ParameterError.

    Given as JSON (ParameterInput.JSON), `data` is an object of typed values: unknown keys
    are refused and missing optional fields take their default. Given as a form
    (ParameterInput.FORM), `data` is the POST.
    """
    if given_as == ParameterInput.JSON:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ParameterError({"parameters": ["Must be an object of field names to values."]})
        known = {f["name"] for f in fields}
        errors = {key: ["Unknown parameter."] for key in data if key not in known}
        if errors:
            raise ParameterError(errors)
        data = {
            **{f["name"]: f["default"] for f in fields if "default" in f and f["name"] not in data},
            **data,
        }
    form = parameters_form_class(fields, sourced)(data=data)
    if not form.is_valid():
        raise ParameterError({k: list(v) for k, v in form.errors.items()})
    return {f["name"]: form.cleaned_data.get(f["name"]) for f in fields}


def secret_names(fields: list[dict]) -> set[str]:
    return {f["name"] for f in fields if f.get("type") == FieldType.SECRET}


def parameters_masked(fields: list[dict], values: dict) -> dict:
    """Parameters as they may be shown and stored: secret values replaced by a mask."""
    secrets = secret_names(fields)
    return {k: (MASK if k in secrets and v not in (None, "") else v) for k, v in values.items()}
