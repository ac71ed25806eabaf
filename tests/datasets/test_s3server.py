"""The SeaweedFS launcher: starts on loopback, answers S3, stops its whole process group."""

import os
import socket
from pathlib import Path

import pytest

from tests.support.s3server import S3Server, free_port

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_start_stop(tmp_path):
    port = free_port()
    with S3Server(tmp_path / "s3", port=port, bucket="bucket-one") as server:
        assert server.endpoint == f"http://127.0.0.1:{port}"
        assert "bucket-one" in {b["Name"] for b in server.client().list_buckets()["Buckets"]}
        pid = server.proc.pid
        assert _listening(port)
        cmd = server.command()
        assert "-ip.bind=127.0.0.1" in cmd and "-master.telemetry=false" in cmd
    assert server.proc is None
    assert not _listening(port)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # the whole group is gone


def test_bad_bucket_and_busy_port(tmp_path):
    from avspot.datasets.errors import DataError

    with pytest.raises(DataError, match="bucket"):
        S3Server(tmp_path / "s3", bucket="b!")
    server = S3Server(tmp_path / "s3", bucket="taken")
    server.start()
    try:
        other = S3Server(tmp_path / "s3b", port=server.port)  # port already in use
        with pytest.raises(DataError, match="in use"):
            other.start()
        assert other.proc is None
    finally:
        server.stop()


def test_module_runs_in_foreground(tmp_path):
    import signal
    import subprocess
    import sys

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.s3server", "--dir", str(tmp_path / "s3"), "--port", str(port)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""},
    )  # fmt: skip
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C" in line:
                break
        text = "".join(lines)
        assert f"export AWS_ENDPOINT_URL=http://127.0.0.1:{port}" in text
        assert _listening(port)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert not _listening(port)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_weed_dies_with_its_parent(tmp_path):
    """If the Python process that started weed dies without stopping it, weed goes too."""
    import subprocess
    import sys
    import time

    code = (
        "import sys; from tests.support.s3server import S3Server; "
        "s = S3Server(sys.argv[1]).start(); print(s.port, s.proc.pid, flush=True); "
        "import os; os._exit(0)"  # no stop(), no cleanup
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "s3")],
        capture_output=True,
        text=True,
        timeout=90,
    )
    port, pid = (int(x) for x in out.stdout.split())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.killpg(pid, 9)
        pytest.fail("weed outlived its parent")
    assert not _listening(port)
