"""A model over 1 GB reaches MLflow whole and loads: a real `mlflow server` on 127.0.0.1 (one worker,
as on the cluster) whose artifacts go to the SeaweedFS S3 server, and a client with avspot's
settings (`tracking.client`): the checkpoint goes to S3 in parts through presigned URLs that the
server hands out, so no byte of it passes through the server's one worker, and the client needs no
S3 credentials of its own. The size and sha256 of the object in S3 and of the downloaded copy are
compared with the file that was logged, and the loaded weights with the model's. Prints the
upload and download times (asserts none)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import testing as F
from tests.support.s3server import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MLFLOW = str(Path(sys.executable).with_name("mlflow"))


def _sha256_file(path: Path) -> str:
    import pyarrow.fs as pafs

    from avspot.datasets.checksums import file_sha256

    return file_sha256(pafs.LocalFileSystem(), str(path))[0]


@pytest.fixture()
def server_on_s3(s3, tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """(tracking URI, artifacts URI, server log): `mlflow server --workers 1`, artifacts on S3."""
    artifacts = f"s3://{s3.bucket}/mlartifacts-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {**os.environ, **s3.env, "MLFLOW_S3_ENDPOINT_URL": s3.endpoint,
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # fmt: skip
    cmd = F.mlflow_server_cmd(port, f"sqlite:///{tmp_path / 'mlflow.db'}", artifacts)
    log_path = tmp_path / "server.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        F.wait_http(f"http://127.0.0.1:{port}/health", proc)
        yield f"http://127.0.0.1:{port}", artifacts, log_path
    finally:
        F.stop_group(proc)
        log.close()


def test_a_model_over_1_gb_arrives_whole_and_loads(
    server_on_s3: tuple[str, str, Path], s3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from avspot.avmodels.config import ModelConfig
    from avspot.avmodels.fusion import build_model, count_parameters
    from avspot.avmodels.model_io import save_model
    from avspot.search.tracking.client import get_client, get_or_create_experiment
    from avspot.search.tracking.pyfunc import log_spotter_model
    from avspot.search.tracking.registry import load_spotter

    tracking, artifacts, server_log = server_on_s3
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)  # the client holds no S3 keys: like a worker
    monkeypatch.chdir(tmp_path)

    config = ModelConfig(fusion="before_fc", clusters=512)  # the paper space's k=512 model
    torch.manual_seed(0)
    model = build_model(config).eval()
    n_params = count_parameters(model)
    reference = save_model(model, config, tmp_path / "reference.ckpt")  # the bytes to expect
    size, digest = reference.stat().st_size, _sha256_file(reference)
    assert size >= 2**30, f"{size} bytes: the test needs a checkpoint over 1 GiB"

    client = get_client()
    exp = get_or_create_experiment(client, "large-model")
    run = client.create_run(exp)
    t0 = time.perf_counter()
    model_uri = log_spotter_model(run.info.run_id, exp, model, config)
    upload_s = time.perf_counter() - t0
    t0 = time.perf_counter()  # the transfer alone, without saving, the wheel, the example
    client.log_artifact(run.info.run_id, str(reference), "transfer")
    transfer_s = time.perf_counter() - t0
    client.set_terminated(run.info.run_id)

    # In S3: exactly the logged bytes, under the server's artifact root.
    bucket, prefix = artifacts[len("s3://") :].split("/", 1)
    s3c = s3.client()
    keys = [o["Key"] for page in s3c.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix) for o in page.get("Contents", [])]  # fmt: skip
    (ckpt_key,) = [k for k in keys if k.endswith("/artifacts/checkpoint")]
    assert s3c.head_object(Bucket=bucket, Key=ckpt_key)["ContentLength"] == size
    (copy_key,) = [k for k in keys if k.endswith("/transfer/reference.ckpt")]
    assert s3c.head_object(Bucket=bucket, Key=copy_key)["ContentLength"] == size
    body = s3c.get_object(Bucket=bucket, Key=ckpt_key)["Body"]
    h = hashlib.sha256()
    for block in iter(lambda: body.read(1 << 22), b""):
        h.update(block)
    assert h.hexdigest() == digest

    # The parts went straight to S3: the server only created and completed the upload.
    log = server_log.read_text(errors="replace")
    assert "mpu/create" in log and "mpu/complete" in log, log[-3000:]

    t0 = time.perf_counter()
    loaded, loaded_cfg = load_spotter(model_uri)
    download_s = time.perf_counter() - t0
    assert loaded_cfg == config
    want = model.state_dict()
    got = loaded.state_dict()
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want)
    print(
        f"\nlarge model: {n_params:,} parameters, checkpoint {size / 2**30:.2f} GiB; "
        f"logged as a model in {upload_s:.1f} s (checkpoint saved, wheel built, input example "
        f"checked, uploaded), the file alone in {transfer_s:.1f} s "
        f"({size / 2**20 / transfer_s:.0f} MiB/s); downloaded and loaded in {download_s:.1f} s; "
        "mlflow server --workers 1 on 127.0.0.1, artifacts on SeaweedFS S3 (loopback), "
        "random weights, 2 shared CPU cores"
    )
