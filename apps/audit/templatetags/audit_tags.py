import json

from django import template

register = template.Library()


@register.filter
def audit_value(value) -> str:
    """A value of a diff or of details, as compact text (JSON for lists and objects)."""
    if value is None:
        return "—"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


@register.filter
def audit_json(value) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, indent=2)
