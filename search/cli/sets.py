"""``--set key=value``: the one place where configuration strings become typed values.

Keys are the fields of ``TrainConfig`` and ``ModelConfig`` (``model.`` prefix optional); each
value is parsed by its field's type ("64" and "64.0" for an int, true/false, "none" for an
optional field, finite floats). The library below takes the typed dict (``TrainConfig.merge``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from avspot.avmodels.overrides import optional
from avspot.datasets.errors import DataError

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")
_NONE = ("none", "null", "")


def parse_value(key: str, text: str, typ: Any) -> Any:
    """``text`` parsed as field type ``typ``; DataError naming ``--set key`` otherwise."""
    typ, nullable = optional(typ)
    text = text.strip()
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
        raise DataError(f"--set {key}: cannot parse {text!r} (expected {name_of})") from None
    return text


def parse_sets(pairs: Sequence[str]) -> dict[str, Any]:
    """``--set key=value`` arguments as typed values, checked against the config's keys (and
    applied to a default config, so a bad value fails here, before any work)."""
    from avspot.avmodels.train_config import TrainConfig  # torch: not for --help

    keys = TrainConfig.key_types()
    out: dict[str, Any] = {}
    for pair in pairs:
        raw_key, sep, text = pair.partition("=")
        raw_key = raw_key.strip()
        if not sep or not raw_key:
            raise DataError(f"--set {pair!r}: expected key=value")
        key = raw_key.removeprefix("model.")
        if key not in keys:
            raise DataError(f"--set {raw_key}: unknown key; valid keys: {', '.join(sorted(keys))}")
        out[raw_key] = parse_value(raw_key, text, keys[key][1])
    TrainConfig().merge(out)  # validated together: a bad value names its --set key
    return out
