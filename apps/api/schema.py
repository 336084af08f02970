"""OpenAPI additions drf-spectacular cannot infer: the error answers every operation may give, with their body."""

from __future__ import annotations

ERROR_SCHEMA = {
    "type": "object",
    "description": "`detail` says what went wrong; a 400 names each field at fault instead: "
    '`{"field": ["message", ...]}` (`non_field_errors` for the body as a whole; an item of a list '
    'or object field is named by its index or key: `{"messages": {"3": ["..."]}}`).',
    "properties": {"detail": {"type": "string"}},
    "additionalProperties": {},
}

ERRORS = {
    "400": "Invalid input: the fields (or query parameters) at fault and why.",
    "401": "No valid credentials: send `Authorization: Token <key>` (or log in for a session).",
    "403": "Your role in the project is not enough (or, with a session, the CSRF token is missing).",
    "404": "No such object in your projects (another project's rows are invisible).",
    "429": "Too many requests: see the `Retry-After` header.",
}
PUBLIC_ERRORS = ("400", "429")  # operations that take no credentials (the token request)


def add_error_responses(result, generator, request, public):
    """POSTPROCESSING_HOOKS entry: document the errors on every operation, each with the Error body."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for item in result.get("paths", {}).values():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            codes = PUBLIC_ERRORS if "security" not in operation else ERRORS
            for code in codes:
                response = responses.setdefault(code, {"description": ERRORS[code]})
                response.setdefault("content", body)
                if code == "429":
                    response.setdefault(
                        "headers", {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}}
                    )
    return result
