"""No secret ever becomes a param, tag, artifact or log line: scrubbing of text and mappings.

Secrets are the values of environment variables whose names look secret (AWS keys, MLflow
passwords, tokens) and the user:password part of URIs.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

_SECRET_NAME = re.compile(
    r"secret|passw|token|access_key|api_key|apikey|credential|private_key", re.I
)
_URI_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
_MAX_PARAM_CHARS = 6000


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names look secret (AWS keys, MLflow password...)."""
    env = os.environ if environ is None else environ
    names = {"AWS_ACCESS_KEY_ID", "MLFLOW_TRACKING_USERNAME"}
    vals = {v for k, v in env.items() if (_SECRET_NAME.search(k) or k in names) and len(v) >= 4}
    return sorted(vals, key=len, reverse=True)


def scrub_text(text: str, secrets: Iterable[str] | None = None) -> str:
    """`text` with URI credentials (`scheme://user:pass@`) and secret env values replaced by ***."""
    out = _URI_USERINFO.sub(r"\g<scheme>***@", text)
    for value in secret_values() if secrets is None else secrets:
        out = out.replace(value, "***")
    return out


def scrub(mapping: Mapping[str, Any] | None) -> dict[str, str]:
    """Params/tags ready for MLflow: secret-looking keys dropped, values stringified and scrubbed."""
    secrets = secret_values()
    out: dict[str, str] = {}
    for key, value in (mapping or {}).items():
        if _SECRET_NAME.search(str(key)) or value is None:
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
