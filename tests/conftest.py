"""Shared fixtures. ``s3``: a real SeaweedFS S3 on 127.0.0.1, started once per session."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from tests.support.clock import FakeClock


def pytest_configure(config: pytest.Config) -> None:
    """Trials' node cache of decoded splits in a directory of this test session (Ray workers
    started by the tests inherit it), not the machine's shared one."""
    if not os.environ.get("AVSPOT_CACHE_DIR"):
        os.environ["AVSPOT_CACHE_DIR"] = tempfile.mkdtemp(prefix="avspot-test-cache-")
        config._avspot_cache_dir = os.environ["AVSPOT_CACHE_DIR"]  # type: ignore[attr-defined]


def pytest_unconfigure(config: pytest.Config) -> None:
    made = getattr(config, "_avspot_cache_dir", None)
    if made:
        shutil.rmtree(made, ignore_errors=True)


@dataclass
class S3Env:
    """What a test needs to talk to the session's S3 server."""

    endpoint: str  # http://127.0.0.1:PORT
    bucket: str
    env: dict[str, str]  # AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION
    server: object  # tests.support.s3server.S3Server

    def uri(self, name: str = "t") -> str:
        """A fresh ``s3://bucket/name-<random>`` prefix."""
        return f"s3://{self.bucket}/{name}-{uuid.uuid4().hex[:8]}"

    def client(self):  # noqa: ANN201
        return self.server.client()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Env]:
    """Session-wide SeaweedFS (``weed mini``, loopback only) with bucket ``avspot``.

    Tests that request it (directly or through another fixture) also get its endpoint and keys
    in their environment (AWS_ENDPOINT_URL etc., undone after each test); session- or
    module-scoped fixtures should pass ``s3.endpoint`` or use ``s3.env`` explicitly.
    """
    from tests.support.s3server import S3Server

    server = S3Server(tmp_path_factory.mktemp("s3"), bucket="avspot")
    server.start()
    try:
        yield S3Env(endpoint=server.endpoint, bucket=server.bucket, env=server.env, server=server)
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _s3_environment(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Put the S3 server's endpoint and keys into the environment of tests that use ``s3``."""
    if "s3" in request.fixturenames:
        info: S3Env = request.getfixturevalue("s3")
        for key, value in info.env.items():
            monkeypatch.setenv(key, value)


@pytest.fixture()
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """A fake clock in place of avspot's (``storage.CLOCK``): retries and lock waits record
    their waits on it (``sleeps``) and return at once (``tests/support/clock.py``)."""
    from tests.support.clock import FakeClock, install

    clock = FakeClock()
    install(monkeypatch, clock)
    return clock
