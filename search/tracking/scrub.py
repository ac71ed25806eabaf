"""No secret ever becomes a param, tag, artifact or log line: scrubbing of text and mappings.

Secrets are the values of environment variables whose names look secret (AWS keys, MLflow
passwords, tokens), the user:password part of URIs and pre-signed URL signatures
(``avspot.datasets.redact``, the one scrubber of text).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# One definition of what a secret is and how text is scrubbed: the data layer's (its errors are
# scrubbed too, and it cannot import this package).
from avspot.datasets.redact import SECRET_NAME, scrub_text, secret_values

__all__ = ["flatten", "scrub", "scrub_text", "secret_values"]
_MAX_PARAM_CHARS = 6000


def scrub(mapping: Mapping[str, Any] | None) -> dict[str, str]:
    """Params/tags ready for MLflow: secret-looking keys dropped, values stringified and scrubbed."""
    secrets = secret_values()
    out: dict[str, str] = {}
    for key, value in (mapping or {}).items():
        if SECRET_NAME.search(str(key)) or value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        out[str(key)] = scrub_text(text, secrets)[:_MAX_PARAM_CHARS]
    return out


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config dicts as flat `a.b` keys (a trial config, a TrainConfig.to_dict())."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out
