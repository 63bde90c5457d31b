"""Strict JSON input, as the API's schema states it.

DRF's fields are lenient: a CharField takes 12 and stores "12", a BooleanField takes
"yes" and 1, an IntegerField takes "12". The schema says string, boolean, integer; a
client sending another type has a bug it should hear about, so it is a 400. So is a
string holding U+0000 (NUL) anywhere, free-form objects (settings) included: PostgreSQL
cannot store it.
"""

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

# Field class -> the JSON types (as Python types) it accepts; checked in this order, so
# subclasses (ChoiceField is not a CharField; URLField and SlugField are) come first.
JSON_TYPES: tuple[tuple[type[serializers.Field], tuple[type, ...], str], ...] = (
    (serializers.BooleanField, (bool,), "a boolean"),
    (serializers.CharField, (str,), "a string"),
    (serializers.ChoiceField, (str,), "a string"),
    (serializers.IntegerField, (int,), "an integer"),
    (serializers.FloatField, (int, float), "a number"),
    (serializers.DateTimeField, (str,), "a date-time string"),
)


def _expected(field: serializers.Field) -> tuple[tuple[type, ...], str] | None:
    for field_class, types, name in JSON_TYPES:
        if isinstance(field, field_class):
            return types, name
    return None


def type_errors(serializer: serializers.Serializer, data: Any) -> dict[str, list[str]]:
    """The fields of ``data`` whose JSON type is not the one the field takes."""
    if not isinstance(data, Mapping):
        return {}
    errors = {}
    for name, field in serializer.fields.items():
        if field.read_only or name not in data:
            continue
        value = data[name]
        expected = _expected(field)
        if expected is None or (value is None and field.allow_null):
            continue
        types, description = expected
        # bool is an int in Python, not in JSON.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            errors[name] = [f"must be {description}"]
    return errors


def holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(holds_nul(key) or holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(holds_nul(item) for item in value)
    return False


def nul_errors(data: Any) -> dict[str, list[str]]:
    if not isinstance(data, Mapping):
        return {"non_field_errors": [NUL_MESSAGE]} if holds_nul(data) else {}
    return {str(name): [NUL_MESSAGE] for name, value in data.items() if holds_nul(value)}


NUL_MESSAGE = "must not contain U+0000 (NUL)"


class StrictTypesMixin(serializers.Serializer):
    """For serializers: refuse values of the wrong JSON type before DRF coerces them,
    and strings holding NUL (a ``Serializer`` itself, listed before the serializer class)."""

    def to_internal_value(self, data: Any) -> Any:
        errors = nul_errors(data) or type_errors(self, data)
        if errors:
            raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class Serializer(StrictTypesMixin, serializers.Serializer):
    pass


class ModelSerializer(StrictTypesMixin, serializers.ModelSerializer):
    pass
