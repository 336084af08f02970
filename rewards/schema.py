"""Tool schemas in one shape: OpenAI-style JSON schema, whatever form (OpenAI, BFCL, ToolACE) they came in."""

from __future__ import annotations

import hashlib
import json

# BFCL and ToolACE write Python type names; JSON schema has its own.
_TYPE_MAP = {
    "dict": "object",
    "float": "number",
    "int": "integer",
    "tuple": "array",
    "list": "array",
    "str": "string",
    "bool": "boolean",
}
# BFCL types whose checking rules differ from their JSON schema type: a tuple value is accepted as a list,
# and `any` is checked as a string.
_KEEP_ORIGINAL = {"tuple", "any"}
_JSON_TYPES = {"object", "number", "integer", "array", "string", "boolean", "null"}


class SchemaError(ValueError):
    """A tool definition that cannot be understood; `field` says where."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def sha256_of(value) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def normalize_schema(schema, field: str = "parameters") -> dict:
    """A JSON schema with BFCL's `dict`/`float`/`tuple`/`any` types mapped to JSON schema's.

    `any` drops the type (anything goes); a tuple becomes an array; both keep their BFCL name in
    `x-bfcl-type`. Unknown keys are kept.
    """
    if not isinstance(schema, dict):
        raise SchemaError(field, f"expected an object, got {type(schema).__name__}")
    out = dict(schema)
    kind = out.get("type")
    if isinstance(kind, str):
        if kind in _KEEP_ORIGINAL:
            out["x-bfcl-type"] = kind  # the checker follows BFCL's rules for these
        kind = _TYPE_MAP.get(kind, kind)
        if kind in ("any", ""):
            out.pop("type")
        elif kind not in _JSON_TYPES:
            raise SchemaError(f"{field}.type", f"unknown type {schema['type']!r}")
        else:
            out["type"] = kind
    elif kind is not None and not isinstance(kind, list):
        raise SchemaError(f"{field}.type", f"expected a string, got {type(kind).__name__}")
    if "properties" in out:
        props = out["properties"]
        if not isinstance(props, dict):
            raise SchemaError(f"{field}.properties", "expected an object")
        out["properties"] = {k: normalize_schema(v, f"{field}.properties.{k}") for k, v in props.items()}
    if "items" in out and isinstance(out["items"], dict):
        out["items"] = normalize_schema(out["items"], f"{field}.items")
    if "required" in out and not (
        isinstance(out["required"], list) and all(isinstance(r, str) for r in out["required"])
    ):
        raise SchemaError(f"{field}.required", "expected a list of parameter names")
    return out


def tool_from_any(obj, field: str = "tool") -> tuple[str, str, dict]:
    """(name, description, parameters) from an OpenAI `{"type":"function","function":{...}}` or a bare
    `{"name","description","parameters"}` definition (BFCL, ToolACE)."""
    if not isinstance(obj, dict):
        raise SchemaError(field, f"expected an object, got {type(obj).__name__}")
    if obj.get("type") == "function" and isinstance(obj.get("function"), dict):
        obj, field = obj["function"], f"{field}.function"
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        raise SchemaError(f"{field}.name", "missing or empty")
    description = obj.get("description", "")
    if not isinstance(description, str):
        raise SchemaError(f"{field}.description", "expected a string")
    params = obj.get("parameters", {"type": "object", "properties": {}})
    params = normalize_schema(params, f"{field}.parameters")
    if params.get("type", "object") != "object":
        raise SchemaError(f"{field}.parameters.type", f"expected object, got {params.get('type')!r}")
    params.setdefault("type", "object")
    params.setdefault("properties", {})
    return name.strip(), description, params
