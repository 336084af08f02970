"""Serializer fields the API modules share: JSON a database can store, and ids checked against a project."""

from __future__ import annotations

import math

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from itool_web.validation import MAX_ID, storable_json_error

__all__ = ["MAX_ID", "FiniteFloatField", "IdField", "JSONObjectField", "StorableJSONField", "storable_json_error"]


class StorableJSONField(serializers.JSONField):
    """Any JSON value that the database can store."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if error := storable_json_error(value):
            raise serializers.ValidationError(error)
        return value


@extend_schema_field({"type": "object", "additionalProperties": {}})
class JSONObjectField(StorableJSONField):
    """A JSON object that the database can store."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            raise serializers.ValidationError(f"Expected a JSON object, got {type(value).__name__}.")
        return value


class IdField(serializers.IntegerField):
    """The id of a row (a positive integer in the database's range)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(**kwargs)


class FiniteFloatField(serializers.FloatField):
    """A float that is a number: NaN and infinities (which pass min/max checks) are refused."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            raise serializers.ValidationError("A finite number is required.")
        return value
