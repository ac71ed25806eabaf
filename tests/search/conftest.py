"""Fixtures shared by the search tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import testing as F


@pytest.fixture()
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh sqlite MLflow store in tmp_path, set as MLFLOW_TRACKING_URI (cwd: tmp_path)."""
    monkeypatch.chdir(tmp_path)
    uri = F.sqlite_store(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri
