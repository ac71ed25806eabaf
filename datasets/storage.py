"""Where tables live: a local path or ``s3://bucket/prefix``, as a pyarrow FileSystem.

Credentials come from the standard AWS chain (environment, config files, instance profile);
they are never read, printed or stored here. The S3 endpoint comes from ``endpoint`` or
$AWS_ENDPOINT_URL(_S3). Timeouts and retries are short so that an unreachable endpoint fails
within seconds (as DataError, on first use).

Region: pyarrow's S3 client does not follow region redirects, so a wrong region makes every
request fail. We never force one: $AWS_REGION / $AWS_DEFAULT_REGION when set, else (real AWS,
no endpoint override) the bucket's own region from ``pyarrow.fs.resolve_s3_region``, else the
AWS SDK's own resolution (config profile, EC2 instance metadata).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from avspot.datasets.errors import DataError, one_line

S3_CONNECT_TIMEOUT_S = 3.0
S3_REQUEST_TIMEOUT_S = 10.0  # socket read timeout (between bytes), not a total
S3_MAX_ATTEMPTS = 2


def endpoint_from_env() -> str | None:
    """The S3 endpoint set in the environment, if any."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


@functools.lru_cache(maxsize=64)
def _bucket_region(bucket: str) -> str | None:
    try:
        return pafs.resolve_s3_region(bucket)
    except (OSError, pa.ArrowException):
        return None  # unknown here: leave it to the SDK (and the request) to decide


def s3_region(bucket: str, endpoint: str | None) -> str | None:
    """The region to pass to pyarrow for ``bucket``; None lets the AWS SDK decide."""
    configured = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if configured:
        return configured
    if endpoint:  # an S3-compatible store (SeaweedFS, MinIO...): regions mean nothing there
        return None
    return _bucket_region(bucket)


def resolve(uri: str, endpoint: str | None = None) -> tuple[pafs.FileSystem, str]:
    """Turn a URI into (filesystem, path); ``s3://`` uses ``endpoint`` or $AWS_ENDPOINT_URL."""
    if not isinstance(uri, str) or not uri.strip():
        raise DataError(f"table URI {uri!r}: empty")
    if uri.startswith("s3://"):
        path = uri[len("s3://") :].strip("/")
        if not path:
            raise DataError(f"table URI {uri!r}: expected s3://bucket/prefix")
        kwargs: dict[str, Any] = {
            "connect_timeout": S3_CONNECT_TIMEOUT_S,
            "request_timeout": S3_REQUEST_TIMEOUT_S,
            "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=S3_MAX_ATTEMPTS),
        }
        endpoint = endpoint or endpoint_from_env()
        if endpoint:
            parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise DataError(f"S3 endpoint {endpoint!r}: expected http(s)://host:port")
            kwargs["endpoint_override"] = parts.netloc
            kwargs["scheme"] = parts.scheme
        region = s3_region(path.split("/", 1)[0], endpoint)
        if region:
            kwargs["region"] = region
        try:
            return pafs.S3FileSystem(**kwargs), path
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"{uri}: cannot set up S3 access: {one_line(exc)}") from None
    parts = urlsplit(uri)
    if parts.scheme == "file":
        local = parts.path
    elif parts.scheme and len(parts.scheme) > 1:  # a one-letter scheme is a Windows drive
        raise DataError(
            f"table URI {uri!r}: unsupported scheme {parts.scheme!r} (use a path or s3://)"
        )
    else:
        local = uri
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(local))


@contextlib.contextmanager
def storage_errors(uri: str, what: str) -> Iterator[None]:
    """Turn storage failures (unreachable endpoint, missing bucket, corrupt file) into DataError."""
    try:
        yield
    except DataError:
        raise
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{uri}: {what} failed: {one_line(exc)}") from None


def join(root: str, rel: str) -> str:
    """``root/rel`` for any filesystem path (no doubled slash)."""
    return f"{root.rstrip('/')}/{rel}"


def is_s3(fs: pafs.FileSystem) -> bool:
    return isinstance(fs, pafs.S3FileSystem)
