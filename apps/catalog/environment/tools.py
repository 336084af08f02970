"""What a generated tool is (`Tool`, its `Param`s): its JSON schema document (stage 2 of the environment
generator), and its stored form and real run (stage 5, local deployment: the function in `implementations`)."""

from __future__ import annotations

import inspect
import json
import string
from dataclasses import dataclass

from ..records import ToolSpec
from . import implementations


@dataclass(frozen=True)
class Param:
    type: str  # JSON schema type: string, integer, number or boolean
    description: str
    pool: str = ""  # where values come from when a request names the parameter ("" = only set by a template)
    default: object = None  # None = required
    enum: tuple | None = None
    label: str = ""  # how a question for the missing value names it (default: the name)

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass(frozen=True)
class Tool:
    """One sub-scenario's tool: its document, the requests that call it, and what its output answers."""

    name: str
    domain: str
    description: str
    params: dict[str, Param]
    # Requests: "text with {param} slots" or (text, {param: value the words imply}). A request naming every
    # required parameter asks for a call; one lacking exactly one required parameter is a missing-info case.
    requests: tuple
    answer_keys: tuple[str, ...]  # output fields whose values make the FTRL sub-answer
    summary: str  # the final answer, formatted with the output

    def request_templates(self, missing: bool) -> list[tuple[str, dict, str | None]]:
        """(template, implied arguments, missing parameter) for complete or missing-info requests."""
        out = []
        for request in self.requests:
            text, implied = (request, {}) if isinstance(request, str) else request
            named = template_slots(text) | set(implied)
            absent = [p for p, spec in self.params.items() if spec.required and p not in named]
            if (len(absent) == 1) if missing else not absent:
                out.append((text, implied, absent[0] if missing else None))
        return out


def template_slots(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def tool_document(tool: Tool) -> dict:
    """The tool's parameters as an OpenAI-style JSON schema."""
    properties = {}
    for name, param in tool.params.items():
        prop = {"type": param.type, "description": param.description}
        if param.enum:
            prop["enum"] = list(param.enum)
        if not param.required:
            prop["description"] += f" Default: {json.dumps(param.default)}."
            prop["default"] = param.default
        properties[name] = prop
    required = [name for name, param in tool.params.items() if param.required]
    return {"type": "object", "properties": properties, "required": required}


def tool_spec(tool: Tool) -> ToolSpec:
    """The tool as stored: its document and, as implementation, the source of its function."""
    source = inspect.getsource(getattr(implementations, tool.name))
    return ToolSpec(tool.name, tool.description, tool_document(tool), source)


def run_call(name: str, arguments: dict) -> dict:
    """Run a tool's real implementation; an error output means the generator built a bad call."""
    output = getattr(implementations, name)(**arguments)
    if "error" in output:
        raise RuntimeError(f"generated call {name}({arguments}) failed: {output['error']}")
    return output
