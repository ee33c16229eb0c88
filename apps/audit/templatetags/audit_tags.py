import json
import re

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


# How runs were named before they named their service and environment: "Deploy on 1".
_OLD_RUN_NAME = re.compile(r"^Run #(\d+) (.+) on \d+$")


@register.filter
def audit_object(event) -> str:
    """The object of a row by its name: a run recorded as "Run #7 Deploy on 1" (the
    environment's id) reads "Run #7: Deploy hello-web on qa", from the row's own columns."""
    name = event.object_repr
    if event.object_type == "runs.run" and (old := _OLD_RUN_NAME.match(name)):
        where = " ".join(part for part in (event.service, "on", event.environment) if part)
        return f"Run #{old.group(1)}: {old.group(2)} {where}".strip()
    return name
