"""Where tables live: a local path or ``s3://bucket/prefix``, as a pyarrow FileSystem.

Credentials come from the standard AWS chain (environment, config files, instance profile);
they are never read, printed or stored here. The S3 endpoint comes from ``endpoint`` or
$AWS_ENDPOINT_URL(_S3). Timeouts and retries are short so that an unreachable endpoint fails
within seconds (as DataError, on first use).

Outages: an endpoint that does not answer when a command starts fails within seconds (bad
input). A store that drops while a table is read or a checkpoint written is retried with
backoff (``call_with_backoff``, ``patient``) for at most $AVSPOT_STORAGE_OUTAGE_S seconds
(default 120), then fails with a DataError naming the URI.

Region: pyarrow's S3 client does not follow region redirects, so a wrong region makes every
request fail. We never force one: $AWS_REGION / $AWS_DEFAULT_REGION when set, else (real AWS,
no endpoint override) the bucket's own region from ``pyarrow.fs.resolve_s3_region``, else the
AWS SDK's own resolution (config profile, EC2 instance metadata).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from avspot.datasets.errors import DataError, one_line

S3_CONNECT_TIMEOUT_S = 3.0
S3_REQUEST_TIMEOUT_S = 10.0  # socket read timeout (between bytes), not a total
S3_MAX_ATTEMPTS = 2
OUTAGE_ENV = "AVSPOT_STORAGE_OUTAGE_S"
DEFAULT_OUTAGE_S = 120.0
# What a dropped or restarting store looks like (AWS SDK error kinds, curl codes, socket errors);
# anything else (missing key, access denied, corrupt file) is not retried.
_TRANSIENT = re.compile(
    r"NETWORK_CONNECTION|Could(?: not|n't) connect|Connection (?:refused|reset|aborted)"
    r"|timed out|SERVICE_UNAVAILABLE|SLOW_DOWN|INTERNAL_FAILURE|REQUEST_TIMEOUT"
    r"|HTTP status 50[0234]|curlCode: (?:7|28|52|55|56)\b|Broken pipe",
    re.I,
)
T = TypeVar("T")


@dataclass
class Clock:
    """The time that bounded waits read and how they wait: ``time.monotonic`` and
    ``time.sleep``. ``CLOCK`` is the one instance every outage retry and lock wait uses (storage
    here, tracking's ``retry`` and outbox, the promotion lock), looked up at each call, so that
    tests can put a fake clock in its place that records each wait instead of sleeping."""

    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


CLOCK = Clock()


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


def resolve(
    uri: str, endpoint: str | None = None, *, background_writes: bool = True
) -> tuple[pafs.FileSystem, str]:
    """Turn a URI into (filesystem, path); ``s3://`` uses ``endpoint`` or $AWS_ENDPOINT_URL.
    ``background_writes=False``: S3 uploads run in the calling thread (see ``patient``)."""
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
            "background_writes": background_writes,
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


def absolute_uri(uri: str) -> str:
    """``uri`` with a local path made absolute; ``s3://`` and other URIs unchanged. A URI handed
    to other processes needs it: Tune runs each trial in its own working directory, so a
    relative table path would be resolved against the trial's folder there."""
    if not isinstance(uri, str) or "://" in uri:
        return uri
    return os.path.abspath(os.path.expanduser(uri))


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


# ---- outages: retry with backoff, bounded ---------------------------------------------------------


def env_number(name: str, default: float) -> float:
    """A number >= 0 from environment variable ``name`` (``default`` when unset or empty);
    DataError naming the variable otherwise."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise DataError(f"${name}={raw!r}: expected a number >= 0")
    return value


def outage_budget_s() -> float:
    """Seconds a dropped store is retried before a read or write fails ($AVSPOT_STORAGE_OUTAGE_S)."""
    return env_number(OUTAGE_ENV, DEFAULT_OUTAGE_S)


def is_transient(exc: BaseException) -> bool:
    """True for errors of a store that is unreachable or overloaded right now (worth a retry)."""
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
        return False
    return isinstance(exc, OSError | pa.ArrowException) and bool(_TRANSIENT.search(str(exc)))


def call_with_backoff(
    fn: Callable[[], T], uri: str, what: str, *, budget_s: float | None = None
) -> T:
    """``fn()``, retried with exponential backoff (0.5 s doubling, at most 8 s apart) while it
    fails with a transient storage error, for at most ``budget_s`` (default
    ``outage_budget_s()``); then, or on any other storage error, DataError naming ``uri``."""
    budget = outage_budget_s() if budget_s is None else budget_s
    start = CLOCK.monotonic()
    delay = 0.5
    while True:
        try:
            return fn()
        except DataError:
            raise
        except (OSError, pa.ArrowException) as exc:
            waited = CLOCK.monotonic() - start
            if not is_transient(exc):
                raise DataError(f"{uri}: {what} failed: {one_line(exc)}") from None
            if waited >= budget:
                raise DataError(
                    f"{uri}: {what} failed: storage unreachable for {waited:.0f}s "
                    f"(${OUTAGE_ENV}={budget:g}): {one_line(exc)}"
                ) from None
            CLOCK.sleep(min(delay, max(0.0, budget - waited)))
            delay = min(delay * 2, 8.0)


class _BufferedUpload(io.RawIOBase):
    """An output stream kept in memory and uploaded whole, with retries, when it is closed: a
    put that fails halfway is simply repeated (objects appear whole or not at all)."""

    def __init__(self, handler: RetryingHandler, path: str, metadata: Any) -> None:
        super().__init__()
        self._handler, self._path, self._metadata = handler, path, metadata
        self._buffer = io.BytesIO()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return self._buffer.write(data)

    def tell(self) -> int:
        return self._buffer.tell()

    def close(self) -> None:
        if self.closed:
            return
        payload = self._buffer.getvalue()
        super().close()
        self._buffer = io.BytesIO()

        def put() -> None:
            with self._handler.fs.open_output_stream(self._path, metadata=self._metadata) as f:
                f.write(payload)

        self._handler.retry(put, f"writing {self._path}")


class RetryingHandler(pafs.FileSystemHandler):
    """A pyarrow filesystem handler that retries every operation of ``fs`` through outages
    (``call_with_backoff``); output streams are buffered and uploaded whole on close.

    For Ray Tune's storage (checkpoints and experiment state: small files): table data is
    read with its own retries (``table.iter_halves``, Ray Data's retried I/O errors).
    """

    def __init__(self, fs: pafs.FileSystem, uri: str, budget_s: float | None = None) -> None:
        self.fs, self.uri = fs, uri
        self.budget_s = outage_budget_s() if budget_s is None else budget_s

    def __eq__(self, other: object) -> bool:
        if isinstance(other, pafs.PyFileSystem):
            other = other.handler
        return isinstance(other, RetryingHandler) and self.fs.equals(other.fs)

    def __hash__(self) -> int:  # pragma: no cover - handlers are not used as keys
        return hash(self.uri)

    def retry(self, fn: Callable[[], T], what: str) -> T:
        try:
            return call_with_backoff(fn, self.uri, what, budget_s=self.budget_s)
        except DataError as exc:  # keep the type pyarrow callers expect (FileNotFoundError...)
            raise OSError(str(exc)) from None

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        def attempt() -> T:
            try:
                return fn()
            except (OSError, pa.ArrowException) as exc:
                if is_transient(exc):
                    raise
                raise _Passthrough(exc) from None  # FileNotFoundError etc. as they are

        try:
            return self.retry(attempt, what)
        except _Passthrough as p:
            raise p.exc from None

    def get_type_name(self) -> str:
        return f"retrying-{self.fs.type_name}"

    def normalize_path(self, path: str) -> str:
        return self.fs.normalize_path(path)

    def equals(self, other: Any) -> bool:
        return self == other

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return self._call("getting file info", lambda: self.fs.get_file_info(paths))

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        return self._call(f"listing {selector.base_dir}", lambda: self.fs.get_file_info(selector))

    def create_dir(self, path: str, recursive: bool) -> None:
        self._call(f"creating {path}", lambda: self.fs.create_dir(path, recursive=recursive))

    def delete_dir(self, path: str) -> None:
        self._call(f"deleting {path}", lambda: self.fs.delete_dir(path))

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self._call(
            f"deleting {path}",
            lambda: self.fs.delete_dir_contents(path, missing_dir_ok=missing_dir_ok),
        )

    def delete_root_dir_contents(self) -> None:
        self._call("deleting /", lambda: self.fs.delete_dir_contents("/", accept_root_dir=True))

    def delete_file(self, path: str) -> None:
        self._call(f"deleting {path}", lambda: self.fs.delete_file(path))

    def move(self, src: str, dest: str) -> None:
        self._call(f"moving {src}", lambda: self.fs.move(src, dest))

    def copy_file(self, src: str, dest: str) -> None:
        self._call(f"copying {src}", lambda: self.fs.copy_file(src, dest))

    def open_input_stream(self, path: str) -> pa.NativeFile:
        data = self._call(f"reading {path}", lambda: self._read_all(path))
        return pa.BufferReader(data)

    def open_input_file(self, path: str) -> pa.NativeFile:
        return self.open_input_stream(path)

    def _read_all(self, path: str) -> bytes:
        with self.fs.open_input_stream(path) as f:
            return f.read()

    def open_output_stream(self, path: str, metadata: Any = None) -> pa.NativeFile:
        return pa.PythonFile(_BufferedUpload(self, path, metadata), mode="w")

    def open_append_stream(self, path: str, metadata: Any = None) -> pa.NativeFile:
        return self._call(f"appending to {path}", lambda: self.fs.open_append_stream(path))


class _Passthrough(Exception):
    """Carries a non-transient error through ``call_with_backoff`` unchanged."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(str(exc))
        self.exc = exc


def patient(uri: str, endpoint: str | None = None) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path) of ``uri`` with every operation retried through outages
    (``RetryingHandler``); local paths get the plain local filesystem.

    The S3 client underneath writes in the calling thread (no background writes): Ray Tune
    copies checkpoints with ``pyarrow.fs.copy_files`` on pyarrow's I/O threads, and S3 writes
    that need those same threads then wait for each other forever (seen: a search hung after
    an outage; apache/arrow#32372)."""
    fs, path = resolve(uri, endpoint, background_writes=False)
    if not is_s3(fs):
        return fs, path
    return pafs.PyFileSystem(RetryingHandler(fs, uri)), path


# ---- results directories ------------------------------------------------------------------------


def check_writable_dir(path: str | os.PathLike[str], what: str) -> None:
    """DataError now, not after hours of work, when local directory ``path`` could not be
    created or written: its nearest existing ancestor must be a directory where a file can be
    created (probed with a temporary file, removed at once; nothing is left behind)."""
    target = Path(os.path.abspath(os.path.expanduser(str(path))))
    probe_dir = target
    while not probe_dir.exists():
        if probe_dir.parent == probe_dir:
            break
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise DataError(f"{what} {path}: {probe_dir} is a file, not a directory", field=what)
    try:
        fd, tmp = tempfile.mkstemp(dir=probe_dir, prefix=".avspot-probe-")
    except OSError as exc:
        raise DataError(
            f"{what} {path}: cannot write in {probe_dir}: {exc.strerror}", field=what
        ) from None
    os.close(fd)
    os.unlink(tmp)
