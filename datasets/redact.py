"""No secret in any message: the one scrubber of text, used by the data layer's errors and by
``search/tracking/scrub.py`` (params, tags, artifacts, run errors).

Secrets are the values of environment variables whose names look secret (AWS keys, MLflow
passwords, tokens), the user:password part of URIs, and the signing parts of pre-signed S3 URLs
(``X-Amz-Signature``, ``X-Amz-Credential``, ``X-Amz-Security-Token``, ``AWSAccessKeyId``,
``Signature``) that an S3 error may quote.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

SECRET_NAME = re.compile(
    r"secret|passw|token|access_key|api_key|apikey|credential|private_key", re.I
)
_SECRET_NAMES = {"AWS_ACCESS_KEY_ID", "MLFLOW_TRACKING_USERNAME"}
_URI_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
_SIGNED_QUERY = re.compile(
    r"(?P<key>X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|AWSAccessKeyId"
    r"|X-Goog-Signature|X-Goog-Credential|Signature|Credential)=[^&\s'\"<>]+",
    re.I,
)
_AUTH_HEADER = (
    re.compile(  # "Authorization: AWS4-HMAC-SHA256 Credential=..." -> "Authorization: ***"
        r"(?P<key>Authorization)(?P<sep>[\"']?\s*[:=]\s*[\"']?)[^\s\"',;]+(?:\s+[^\s\"',;]+)?", re.I
    )
)


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names look secret (AWS keys, MLflow password...),
    longest first (so that a secret containing another is replaced whole)."""
    env = os.environ if environ is None else environ
    vals = {
        v for k, v in env.items() if (SECRET_NAME.search(k) or k in _SECRET_NAMES) and len(v) >= 4
    }
    return sorted(vals, key=len, reverse=True)


def scrub_text(text: str, secrets: Iterable[str] | None = None) -> str:
    """``text`` with URI credentials (``scheme://user:pass@``), pre-signed URL signatures,
    authorization headers and secret environment values replaced by ``***``."""
    out = _URI_USERINFO.sub(r"\g<scheme>***@", text)
    out = _SIGNED_QUERY.sub(r"\g<key>=***", out)
    out = _AUTH_HEADER.sub(r"\g<key>\g<sep>***", out)
    for value in secret_values() if secrets is None else secrets:
        out = out.replace(value, "***")
    return out
