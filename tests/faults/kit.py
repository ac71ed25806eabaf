"""Helpers of the fault-injection suite (loaded by path: conftest modules cannot be imported by
name): servers we start and stop by pid (an `mlflow server`), `avspot` commands as
subprocesses, the processes a search started, and a thread that cannot override file
permissions (tests run as root here, and root writes anywhere)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import testing as F
from tests.support.s3server import free_port

BIN = Path(sys.executable).parent
MLFLOW = str(BIN / "mlflow")
AVSPOT = [sys.executable, "-m", "avspot"]


def quiet_env(**extra: str) -> dict[str, str]:
    """The environment for `avspot` subprocesses: small Ray object store, no bars."""
    env = {
        **os.environ,
        "AVSPOT_OBJECT_STORE_BYTES": str(200 * 1024 * 1024),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "PYTHONUNBUFFERED": "1",
    }
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    env.update(extra)
    return env


def stop_group(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM then SIGKILL the process group we started (by its pid)."""
    if proc.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            continue


class MlflowServer:
    """`mlflow server` on 127.0.0.1 (sqlite store, proxied artifacts), stoppable and restartable
    on the same port and store: an outage of the tracking server."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        root.mkdir(parents=True, exist_ok=True)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        store = f"sqlite:///{self.root / 'mlflow.db'}"
        return F.mlflow_server_cmd(self.port, store, str(self.root / "artifacts"))

    def start(self, timeout: float = 180.0) -> MlflowServer:
        with open(self.root / "server.log", "ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                env=quiet_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        F.wait_http(f"{self.uri}/health", self.proc, timeout=timeout)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            self.proc = None


class Lines:
    """A subprocess's stdout+stderr collected line by line in a thread, to wait on progress."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            if self.proc.poll() is not None and not self._thread.is_alive():
                break
            time.sleep(0.2)
        raise AssertionError(f"no line with {text!r} in {timeout:.0f}s:\n{self.text[-4000:]}")

    def finish(self, timeout: float) -> int:
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_group(self.proc)
            raise AssertionError(f"not done in {timeout:.0f}s:\n{self.text[-5000:]}") from None
        self._thread.join(timeout=10)
        return rc

    @property
    def text(self) -> str:
        return "".join(self.lines)


def start_avspot(args: list[str], env: dict[str, str], cwd: Path) -> Lines:
    """`python -m avspot ARGS` in its own process group, output collected."""
    proc = subprocess.Popen(
        [*AVSPOT, *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    return Lines(proc)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, grandchildren...), from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        out += kids
        todo += kids
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


# ---- no CAP_DAC_OVERRIDE: permissions as an ordinary user sees them ----------------------------

_CAP_DAC = (1 << 1) | (1 << 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
_SYS_CAPGET, _SYS_CAPSET = 125, 126  # x86_64


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


@contextlib.contextmanager
def no_dac_override() -> Iterator[None]:
    """Within the block, this thread obeys file permissions even as root: CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH leave its effective set (they stay permitted and come back after)."""
    if os.geteuid() != 0:
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)()
    if libc.syscall(_SYS_CAPGET, ctypes.byref(header), data) != 0:
        pytest.skip("capget failed: cannot drop CAP_DAC_OVERRIDE here")
    saved = data[0].effective
    data[0].effective = saved & ~_CAP_DAC
    if libc.syscall(_SYS_CAPSET, ctypes.byref(header), data) != 0:
        pytest.skip("capset failed: cannot drop CAP_DAC_OVERRIDE here")
    try:
        yield
    finally:
        data[0].effective = saved
        libc.syscall(_SYS_CAPSET, ctypes.byref(header), data)


def read_only_dir(path: Path) -> Path:
    """A directory nobody may write to (mode 0555); tests write in it only under
    ``no_dac_override``."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o555)
    return path


def snapshot(path: Path) -> set[str]:
    """Every file and directory under ``path`` (relative names), to show nothing was added."""
    if not path.exists():
        return set()
    return {str(p.relative_to(path)) for p in path.rglob("*")}


SETPRIV_NO_DAC = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
                  "--bounding-set=-dac_override,-dac_read_search", "--"]  # fmt: skip
