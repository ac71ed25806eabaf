"""Typed configuration values: the one parser of ``--set key=value`` strings and JSON values.

Both ``ModelConfig`` and ``TrainConfig`` convert values by their dataclass field types here, so
``--set clusters=64`` means the same to ``avspot train``, ``avspot search --set`` and a space.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from avspot.datasets.errors import DataError

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")
_NONE = ("none", "null", "")


def field_types(cls: type) -> dict[str, Any]:
    """{field name: annotated type} of a dataclass (string annotations resolved)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, str) for f in dataclasses.fields(cls)}


def _optional(typ: Any) -> tuple[Any, bool]:
    """(inner type, whether None is allowed) of ``X | None`` / ``Optional[X]``."""
    origin = typing.get_origin(typ)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        return (args[0] if len(args) == 1 else str), len(args) < len(typing.get_args(typ))
    return typ, False


def parse_value(name: str, value: Any, typ: Any) -> Any:
    """``value`` converted to the field type ``typ``.

    Strings are parsed ("64" and "64.0" for an int, "true"/"false", "none" for an optional
    field; floats must be finite); an int given for a float field becomes a float; other values
    pass unchanged (the config's ``validate`` judges them). DataError names the field.
    """
    typ, nullable = _optional(typ)
    if not isinstance(value, str):
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value
    text = value.strip()
    if nullable and text.lower() in _NONE:
        return None
    try:
        if typ is bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError(text)
        if typ is int:
            number = float(text)
            if not number.is_integer():
                raise ValueError(text)
            return int(number)
        if typ is float:
            number = float(text)
            if not math.isfinite(number):
                raise ValueError(text)
            return number
    except ValueError:
        name_of = getattr(typ, "__name__", str(typ))
        raise DataError(f"{name}: cannot parse {value!r} (expected {name_of})") from None
    return text


def parse_fields(cls: type, values: dict[str, Any], what: str) -> dict[str, Any]:
    """Convert ``values`` by ``cls``'s field types; unknown names raise DataError with the
    valid ones (``what`` names the config in the message)."""
    types_ = field_types(cls)
    unknown = sorted(set(values) - set(types_))
    if unknown:
        raise DataError(f"unknown {what} parameter(s) {unknown}; valid: {sorted(types_)}")
    return {k: parse_value(k, v, types_[k]) for k, v in values.items()}
