"""Typed configuration values, checked by their dataclass field types.

``ModelConfig`` and ``TrainConfig`` take values that already have their types (Python values
from JSON, a search space or the command line's parser, ``search.cli.sets``, which is the only
place that parses ``--set key=value`` strings). Here they are checked: an int is taken for a
float field, ``None`` for an optional one, a string for a number or flag is a DataError that
names the field.
"""

from __future__ import annotations

import dataclasses
import numbers
import types
import typing
from typing import Any

from avspot.datasets.errors import DataError

__all__ = ["check_fields", "check_value", "field_types", "optional"]


def field_types(cls: type) -> dict[str, Any]:
    """{field name: annotated type} of a dataclass (string annotations resolved)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, str) for f in dataclasses.fields(cls)}


def optional(typ: Any) -> tuple[Any, bool]:
    """(inner type, whether None is allowed) of ``X | None`` / ``Optional[X]``."""
    origin = typing.get_origin(typ)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        return (args[0] if len(args) == 1 else str), len(args) < len(typing.get_args(typ))
    return typ, False


def check_value(name: str, value: Any, typ: Any) -> Any:
    """``value`` for field type ``typ``: an int is taken for a float field (as a float), None for
    an optional one; a string for a field that is not a string is refused (strings are parsed by
    the command line, not here); other values pass to the config's own ``validate``, which
    judges ranges and types with the field's name."""
    typ, nullable = optional(typ)
    if value is None and nullable:
        return None
    if isinstance(value, str) and typ is not str:
        name_of = getattr(typ, "__name__", str(typ))
        raise DataError(f"{name}={value!r}: expected {name_of}, not a string", field=name)
    if typ is float and isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return float(value)
    return value


def check_fields(cls: type, values: dict[str, Any], what: str) -> dict[str, Any]:
    """``values`` checked by ``cls``'s field types; unknown names raise DataError with the valid
    ones (``what`` names the config in the message)."""
    types_ = field_types(cls)
    unknown = sorted(set(values) - set(types_))
    if unknown:
        raise DataError(
            f"unknown {what} parameter(s) {unknown}; valid: {sorted(types_)}", field=unknown[0]
        )
    return {k: check_value(k, v, types_[k]) for k, v in values.items()}
