"""Large-artifact settings of the MLflow client (tracking.client): presigned multipart transfers
for http(s) servers, and the longer per-request timeout while a model is logged."""

from __future__ import annotations

import os

import pytest

from avspot.datasets.errors import DataError
from avspot.search.tracking import client as C


def test_http_servers_get_multipart_transfers_and_users_keep_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key in C._ARTIFACT_ENV_DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE", str(8 * 2**20))  # the user's choice
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens: no check
    C.get_client(check=False)
    assert os.environ["MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD"] == "true"
    assert int(os.environ["MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE"]) == 64 * 2**20
    assert int(os.environ["MLFLOW_MULTIPART_DOWNLOAD_MINIMUM_FILE_SIZE"]) == 64 * 2**20
    assert os.environ["MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE"] == str(8 * 2**20)
    from mlflow.environment_variables import (
        MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD,
        MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE,
    )

    assert MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD.get() is True  # MLflow reads them as we meant
    assert MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE.get() == 64 * 2**20


def test_artifact_timeout_raises_the_timeout_for_the_block_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_TIMEOUT

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
    monkeypatch.delenv(C.ARTIFACT_TIMEOUT_ENV, raising=False)
    with C.artifact_timeout() as seconds:
        assert seconds == C.DEFAULT_ARTIFACT_TIMEOUT_S == MLFLOW_HTTP_REQUEST_TIMEOUT.get()
    assert MLFLOW_HTTP_REQUEST_TIMEOUT.get() == 15
    monkeypatch.setenv(C.ARTIFACT_TIMEOUT_ENV, "900")
    with pytest.raises(RuntimeError), C.artifact_timeout():
        assert MLFLOW_HTTP_REQUEST_TIMEOUT.get() == 900
        raise RuntimeError("upload failed")
    assert MLFLOW_HTTP_REQUEST_TIMEOUT.get() == 15  # restored after an error too
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1200")  # a user's longer one is kept
    with C.artifact_timeout(60) as seconds:
        assert seconds == 1200
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT")
    with C.artifact_timeout(60):
        assert MLFLOW_HTTP_REQUEST_TIMEOUT.get() == 60
    assert "MLFLOW_HTTP_REQUEST_TIMEOUT" not in os.environ
    monkeypatch.setenv(C.ARTIFACT_TIMEOUT_ENV, "soon")
    with pytest.raises(DataError, match=C.ARTIFACT_TIMEOUT_ENV), C.artifact_timeout():
        pass
