"""How every engine config is validated: built from a dict with unknown keys refused, each field of its declared
type (an int given for a float is stored as a float: JSON has one kind of number), then the config's own rules,
every failure reported at once in a ConfigError that names the fields at fault."""

from __future__ import annotations

import functools
import types
import typing
from dataclasses import fields
from typing import ClassVar


class ConfigError(ValueError):
    """A config that cannot be used. The message names each field at fault, and so does `fields`."""

    def __init__(self, message: str, fields: typing.Iterable[str] = ()):
        super().__init__(message)
        self.fields = tuple(fields)


# (field, holds, what the field must be): "must be > 0" fails as "epochs must be > 0 (got -1.0)"
Rule = tuple[str, bool, str]


class EngineConfig:
    """Base of the engines' config dataclasses. A subclass is a `@dataclass` whose fields carry their defaults,
    names itself in errors with `label`, and lists its value checks in `rules()` (run once the types are right)."""

    label: ClassVar[str] = "engine"  # "unknown <label> setting(s)", "invalid <label> settings"

    def __post_init__(self):
        validate(self)

    def rules(self) -> list[Rule]:
        return []

    @classmethod
    def from_dict(cls, data: dict | None = None):
        """The config with `data`'s settings (None: the defaults); unknown keys are refused, so that a typo is not
        silently ignored."""
        return from_dict(cls, {} if data is None else data)


def above(config, bound, *names: str) -> list[Rule]:
    """The rule `<name> must be > bound` for each of `names`."""
    return [(name, getattr(config, name) > bound, f"must be > {bound}") for name in names]


def at_least(config, bound, *names: str) -> list[Rule]:
    """The rule `<name> must be >= bound` for each of `names`."""
    return [(name, getattr(config, name) >= bound, f"must be >= {bound}") for name in names]


def from_dict(cls, data: dict):
    """`cls(**data)`, refusing anything but a dict and keys that are not fields, naming them and the known ones."""
    label = getattr(cls, "label", cls.__name__)
    if not isinstance(data, dict):
        raise ConfigError(f"{label} settings: expected an object, got {type(data).__name__}")
    known = [f.name for f in fields(cls) if f.init]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"unknown {label} setting(s): {', '.join(unknown)}; known: {', '.join(known)}", unknown)
    return cls(**data)


def validate(config: EngineConfig) -> None:
    """ConfigError listing the fields of the wrong type or, when the types are right, the rules that fail."""
    problems = type_problems(config) or [
        (name, f"{name} {requirement} (got {getattr(config, name)!r})")
        for name, holds, requirement in config.rules()
        if not holds
    ]
    if problems:
        raise ConfigError(
            f"invalid {config.label} settings: " + "; ".join(message for _, message in problems),
            dict.fromkeys(name for name, _ in problems),
        )


def type_problems(config) -> list[tuple[str, str]]:
    """(field, message) for each field whose value is not of its declared type; ints given for floats become
    floats. Generic types are checked by their container (`tuple[str, ...]`: a tuple); rules check the items."""
    problems = []
    for name, hint in _hints(type(config)).items():
        value = getattr(config, name)
        if hint is float and _is_int(value):
            object.__setattr__(config, name, float(value))
        elif not _matches(value, hint):
            problems.append((name, f"{name} must be {_type_name(hint)} (got {value!r})"))
    return problems


@functools.cache
def _hints(cls) -> dict[str, object]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _matches(value, hint) -> bool:
    if hint is float:
        return isinstance(value, float) or _is_int(value)
    if hint is int:
        return _is_int(value)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    return isinstance(value, typing.get_origin(hint) or hint)


def _type_name(hint) -> str:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return " or ".join(_type_name(arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return "None"
    return getattr(typing.get_origin(hint) or hint, "__name__", str(hint))
