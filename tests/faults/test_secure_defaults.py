"""Secure defaults: the servers the project starts listen on loopback only; no credential
reaches an error message, also on failure paths (signed S3 URLs, passwords in URIs)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from avspot.datasets.errors import DataError, one_line
from avspot.datasets.redact import scrub_text
from avspot.datasets.storage import storage_errors

ROOT = Path(__file__).resolve().parents[2]
SIGNED = (
    "https://avspot.s3.amazonaws.com/t/manifest.json?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAFAKEKEYID7777%2F20260101%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20260101T000000Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=5e2b1f0c9a7d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f"
)
LEGACY = (
    "https://b.s3.amazonaws.com/k?AWSAccessKeyId=AKIAOLDSTYLE0001&Expires=1&Signature=c2lnbmF0dXJl"
)
HEADER = "Authorization: AWS4-HMAC-SHA256 Credential=AKIAHEADER00001/20260101/us-east-1/s3"
LEAKS = (
    "AKIAFAKEKEYID7777",
    "5e2b1f0c9a7d",
    "AKIAOLDSTYLE0001",
    "c2lnbmF0dXJl",
    "AKIAHEADER00001",
    "hunter2",
)


def test_signed_urls_and_passwords_are_scrubbed() -> None:
    text = f"GET {SIGNED} failed; retry {LEGACY}; {HEADER}; via http://avspot:hunter2@host:5000/"
    out = scrub_text(text)
    assert not [leak for leak in LEAKS if leak in out], out
    assert "X-Amz-Signature=***" in out and "http://***@host:5000/" in out


def test_data_errors_are_scrubbed_at_the_source(monkeypatch) -> None:
    """DataError (storage, tracking, any bad input) scrubs its own message: nothing that quotes
    a signed URL, a URI password or a secret environment value reaches the terminal."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fakeSecretKey/abc+9999")
    with pytest.raises(DataError) as info, storage_errors("s3://avspot/t", "reading"):
        raise OSError(f"AWS Error ACCESS_DENIED for {SIGNED} with key fakeSecretKey/abc+9999")
    msg = str(info.value)
    assert msg.startswith("s3://avspot/t: reading failed:") and "\n" not in msg
    assert "fakeSecretKey" not in msg and not [leak for leak in LEAKS if leak in msg]
    assert "hunter2" not in str(DataError("--data s3://k:hunter2@b/t: not a table"))
    assert "AKIAOLDSTYLE0001" not in one_line(RuntimeError(LEGACY))


def test_tracking_errors_name_the_server_not_its_password() -> None:
    from avspot.search.tracking.client import get_client
    from tests.support.s3server import free_port

    with pytest.raises(DataError) as info:
        get_client(f"http://avspot:hunter2@127.0.0.1:{free_port()}")
    assert "hunter2" not in str(info.value) and "http://***@127.0.0.1" in str(info.value)


def test_a_failed_trial_keeps_no_secret_in_its_error_tag(tmp_path: Path, monkeypatch) -> None:
    from avspot.search.tracking.client import get_client
    from avspot.search.tracking.names import TAG_ERROR
    from avspot.search.tracking.runs import start_search_run
    from avspot.search.tracking.trial import TrialRun
    from tests.support import testing as F

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", F.sqlite_store(tmp_path))
    parent = start_search_run("secrets", {"space": "smoke"})
    cb = TrialRun(parent, F.tiny_train_config().to_dict(), "t", log_model=False)
    cb.close("FAILED", OSError(f"reading {SIGNED} failed; {HEADER}; http://u:hunter2@h/"))
    tag = get_client().get_run(cb.run_id).data.tags[TAG_ERROR]
    assert "X-Amz-Signature=***" in tag and not [leak for leak in LEAKS if leak in tag], tag


# ---- servers on loopback -----------------------------------------------------------------------


def _socket_inodes(pids: list[int]) -> set[str]:
    inodes = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            m = re.fullmatch(r"socket:\[(\d+)\]", link)
            if m:
                inodes.add(m.group(1))
    return inodes


def listening(pids: list[int]) -> list[tuple[str, int]]:
    """(local address, port) of every TCP socket in LISTEN that these processes hold, read
    from /proc/net/tcp and tcp6 (psutil is not a dependency)."""
    inodes = _socket_inodes(pids)
    out = []
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] != "0A" or f[9] not in inodes:  # 0A: LISTEN
                continue
            addr, port = f[1].split(":")
            out.append((_address(addr, v6), int(port, 16)))
    return out


def _address(hexaddr: str, v6: bool) -> str:
    raw = bytes.fromhex(hexaddr)
    if not v6:
        return ".".join(str(b) for b in raw[::-1])
    words = [raw[i : i + 4][::-1] for i in range(0, 16, 4)]  # each 32-bit word little-endian
    import ipaddress

    return str(ipaddress.IPv6Address(b"".join(words)))


def _loopback(addr: str) -> bool:
    return addr.startswith("127.") or addr in ("::1", "::ffff:127.0.0.1")


@pytest.mark.integration
def test_started_servers_listen_on_loopback_only(kit, tmp_path: Path) -> None:
    """A started SeaweedFS and `mlflow server` (as the tests, README and `make s3` start them):
    every socket they listen on is bound to 127.0.0.1, none to all interfaces."""
    from tests.support.s3server import S3Server

    with S3Server(tmp_path / "s3") as s3:
        assert s3.proc is not None
        pids = [s3.proc.pid, *kit.descendants(s3.proc.pid)]
        socks = listening(pids)
        assert s3.port in {p for _, p in socks}, socks
        assert all(_loopback(a) for a, _ in socks), socks
    server = kit.MlflowServer(tmp_path / "mlflow").start()
    try:
        assert server.proc is not None
        socks = listening([server.proc.pid, *kit.descendants(server.proc.pid)])
        assert server.port in {p for _, p in socks}, socks
        assert all(_loopback(a) for a, _ in socks), socks
    finally:
        server.stop()


def test_documented_server_commands_bind_loopback_or_authenticate() -> None:
    """Every `mlflow server` command line in the README, scripts and cluster recipe binds
    127.0.0.1, or 0.0.0.0 only with basic auth (the cluster's; tests/test_cluster_config.py
    checks the recipe itself)."""
    files = [ROOT / "README.md", ROOT / "cluster.yaml", *(ROOT / "scripts").rglob("*.sh")]
    commands = [
        line
        for f in files
        for line in f.read_text().splitlines()
        if re.search(r"\bmlflow server\b.*--host", line)
    ]
    assert commands
    for line in commands:
        host = re.search(r"--host\s+(\S+)", line).group(1)  # type: ignore[union-attr]
        assert host == "127.0.0.1" or "--app-name basic-auth" in line, line
    assert '"-ip.bind=127.0.0.1"' in (ROOT / "tests" / "support" / "s3server.py").read_text()
