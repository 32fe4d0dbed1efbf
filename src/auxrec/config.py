"""Config resolution with visible precedence: defaults < config file < command-line flags.

`resolve_config` is the one place where layers are merged. Unknown keys raise, values
are type-checked by pydantic, and the result records where each value came from, so a
saved run shows exactly which setting took effect and why.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any, TypeVar

import pydantic

from auxrec.exceptions import ConfigError

T = TypeVar("T")
M = TypeVar("M", bound=pydantic.BaseModel)


def resolve_config(config_class: type[T], layers: list[tuple[str, dict[str, Any]]]) -> tuple[T, dict[str, str]]:
    """Merge ``layers`` (lowest precedence first) over ``config_class``'s defaults.

    Returns the validated config and ``{field: source}`` with source ``"default"`` or the
    name of the layer that set it.
    """
    fields = {field.name for field in dataclasses.fields(config_class)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    sources = {name: "default" for name in fields}
    for source, layer in layers:
        unknown = sorted(set(layer) - fields)
        if unknown:
            raise ConfigError(
                f"unknown setting(s) {', '.join(unknown)} for {config_class.__name__} (from {source}); "
                f"known: {', '.join(sorted(fields)) or 'none'}"
            )
        values.update(layer)
        sources.update({key: source for key in layer})
    try:
        config = pydantic.TypeAdapter(config_class).validate_python(values)
    except pydantic.ValidationError as error:
        field, message = first_validation_error(error)
        if not field:  # a rule over several settings (the config's __post_init__)
            raise ConfigError(f"invalid settings for {config_class.__name__}: {message}") from None
        raise ConfigError(
            f"invalid value {values.get(field)!r} for {config_class.__name__}.{field} ({sources.get(field, '?')}): "
            f"{message}"
        ) from None
    return config, sources


@dataclasses.dataclass(frozen=True)
class SettingDoc:
    """One setting of a config dataclass, as `auxrec models` shows it."""

    name: str
    type: str
    default: Any
    description: str


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) is typing.Literal:
        return " | ".join(map(str, typing.get_args(annotation)))
    arguments = typing.get_args(annotation)
    if arguments:  # a union such as float | None
        return " | ".join(_type_name(a) for a in arguments)
    return "null" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))


def describe_settings(config_class: type[Any], defaults: dict[str, Any] | None = None) -> list[SettingDoc]:
    """Every field of a config dataclass: name, type, default and the ``Field(description=...)`` it carries.

    ``defaults`` replaces the class's own default of the fields it names (a model's
    ``training_defaults``), so what is shown is what a run gets.
    """
    defaults = defaults or {}
    hints = typing.get_type_hints(config_class, include_extras=True)
    documented = []
    for field in dataclasses.fields(config_class):
        annotation = hints[field.name]
        metadata = typing.get_args(annotation)[1:] if typing.get_origin(annotation) is typing.Annotated else ()
        description = next((m.description for m in metadata if getattr(m, "description", None)), "")
        documented.append(SettingDoc(field.name, _type_name(annotation), defaults.get(field.name, field.default),
                                     description))
    return documented


def checked_options(model_class: type[M], prefix: str, **values: Any) -> M:
    """``model_class(**values)`` for a pydantic options model, with a bad value as one `ConfigError` line.

    ``prefix`` turns a field name into what the user typed (``"--"`` for command-line flags).
    """
    try:
        return model_class(**values)
    except pydantic.ValidationError as error:
        field, message = first_validation_error(error)
        if not field:  # a rule over several options: its message names them
            raise ConfigError(message) from None
        raise ConfigError(f"invalid {prefix}{field.replace('_', '-')}={values.get(field)!r}: {message}") from None


def first_validation_error(error: pydantic.ValidationError) -> tuple[str, str]:
    """(dotted field path, message) of the first problem pydantic found: one line for the user."""
    first = error.errors()[0]
    message = first["msg"].removeprefix("Value error, ")
    return ".".join(str(part) for part in first["loc"]), message


def parse_assignments(assignments: list[str], what: str) -> dict[str, Any]:
    """``["a=1", "b=x"]`` → ``{"a": "1", "b": "x"}`` (types are checked later)."""
    values: dict[str, Any] = {}
    for assignment in assignments:
        key, separator, value = assignment.partition("=")
        if not separator or not key.strip():
            raise ConfigError(f"{what}: expected KEY=VALUE, got {assignment!r}")
        values[key.strip().replace("-", "_")] = value.strip()
    return values


def read_config_file(path: Path) -> dict[str, Any]:
    """A JSON config file with optional sections ``model``, ``training``, ``seed``."""
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ConfigError(f"config file {path} is not valid JSON: {error}") from None
    if not isinstance(content, dict):
        raise ConfigError(f"config file {path} must hold a JSON object")
    unknown = sorted(set(content) - {"model", "training", "seed", "evaluation"})
    if unknown:
        raise ConfigError(f"config file {path}: unknown section(s) {', '.join(unknown)}")
    return content
