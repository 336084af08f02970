"""A compact column for token ids: little-endian uint32s in a binary column (4 bytes a token, no JSON)."""

from __future__ import annotations

import sys
from array import array

from django.db import models

_ITEM = "I" if array("I").itemsize == 4 else "L"  # a 4-byte unsigned int on every platform Python runs on


def ids_to_bytes(ids: list[int]) -> bytes:
    """`ids` as little-endian uint32s; ValueError if one is not an int in [0, 2**32)."""
    try:
        packed = array(_ITEM, ids)
    except (OverflowError, TypeError) as exc:
        raise ValueError(f"token ids must be integers in [0, 2**32): {exc}") from exc
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def ids_from_bytes(data: bytes | memoryview) -> list[int]:
    packed = array(_ITEM)
    packed.frombytes(bytes(data))
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tolist()


class TokenIdsField(models.BinaryField):
    """A list of token ids (None when unknown), stored as `ids_to_bytes`: a search tree holds tens of millions
    of nodes, so not a JSON list (≈ 2x the bytes on PostgreSQL's jsonb, and slower to write)."""

    description = "token ids (little-endian uint32)"

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("null", True)
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)

    def from_db_value(self, value, expression, connection):
        return None if value is None else ids_from_bytes(value)

    def to_python(self, value):
        if value is None or isinstance(value, list):
            return value
        return ids_from_bytes(value)

    def get_prep_value(self, value):
        if isinstance(value, (list, tuple)):
            value = ids_to_bytes(list(value))
        return super().get_prep_value(value)

    def value_to_string(self, obj):
        value = self.value_from_object(obj)
        return "" if value is None else " ".join(map(str, value))
