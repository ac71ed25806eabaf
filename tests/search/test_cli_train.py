"""`avspot train`: one configuration on a feature table, in process, model and results written."""

from __future__ import annotations

import json

import pytest

from avspot.avmodels.model_io import load_model
from avspot.datasets.errors import DataError
from avspot.datasets.table import write_table
from avspot.search.cli.main import main
from avspot.search.cli.train import train_from_table
from tests.support import testing as F

OVERRIDES = {
    "fusion": "video",
    "pooling": "max",
    "window_s": 4.0,
    "pool_out": 16,
    "batch_size": 32,
    "max_epochs": 2,
}


@pytest.fixture()
def table(tmp_path) -> str:
    uri = str(tmp_path / "table")
    halves = F.tiny_halves(4, split="train") + F.tiny_halves(2, split="valid", seed=1)
    write_table(halves, uri, source="synthetic")
    return uri


def test_train_from_table_writes_model_and_results(tmp_path, table) -> None:
    lines: list[str] = []
    result = train_from_table(table, OVERRIDES, out_dir=tmp_path / "out", log=lines.append)
    assert result.config.model.video_dim == F.DIM  # taken from the table
    assert sum(line.startswith("epoch") for line in lines) == 2
    assert all("train_map" in line for line in lines if line.startswith("epoch"))
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["best_epoch"] == result.best_epoch and saved["fingerprint"]
    model, mcfg = load_model(tmp_path / "out" / "model.pt")
    assert mcfg.fusion == "video" and model.config == mcfg
    with pytest.raises(DataError, match="video_dim=512: the table's is 16"):
        train_from_table(table, {**OVERRIDES, "video_dim": 512}, log=lines.append)


def test_train_command(tmp_path, table, capsys) -> None:
    args = ["train", "--data", table, "--quiet", *[f"--set={k}={v}" for k, v in OVERRIDES.items()]]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "epoch" not in out.split("trained")[0] and "val_average_map loose" in out
    assert main(["train", "--data", table, "--set", "bogus=1"]) == 2
    assert "--set bogus: unknown key" in capsys.readouterr().err
    # the library names the field; the command line shows it as the flag that set it
    assert main(["train", "--data", table, "--set", "lr=-1"]) == 2
    assert "avspot: error: --set lr=-1.0: must be > 0" in capsys.readouterr().err
    assert main(["train", "--data", table, "--set", "video_dim=512"]) == 2
    assert "--set video_dim=512: the table's is 16" in capsys.readouterr().err
