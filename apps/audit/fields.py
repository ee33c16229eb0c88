import json

from django.db import models

from apps.audit.chain import details_text, json_safe


class CanonicalJSONField(models.TextField):
    """A JSON object kept as its canonical text (apps/audit/chain.py), on every database.

    What is stored is exactly what the row's hash covers: no JSON type that
    reorders keys or reformats numbers stands between the hash and the bytes.
    Python sees a dict.
    """

    def from_db_value(self, value, expression, connection):
        return None if value is None else json.loads(value)

    def to_python(self, value):
        if isinstance(value, str):
            return json.loads(value)
        return value

    def get_prep_value(self, value):
        if value is None:
            return None
        return details_text(json_safe(value))

    def value_to_string(self, obj):
        return self.get_prep_value(self.value_from_object(obj))
