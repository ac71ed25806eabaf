"""The data commands through the real CLI entry point."""

import json
import os
import socket

import pytest

from avspot.search.cli.main import main


def _err_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert err.startswith("avspot: error: ")
    return err


def test_synth_inspect(tmp_path, capsys):
    out = str(tmp_path / "t")
    assert (
        main(
            ["data", "synth", "--out", out, "--games", "3", "--seed", "4", "--half-minutes", "0.2"]
        )
        == 0
    )
    said = capsys.readouterr().out
    assert "wrote 3 synthetic games (6 halves," in said and "fingerprint" in said
    assert main(["data", "inspect", out]) == 0
    text = capsys.readouterr().out
    assert "train" in text and "goals" in text and "total" in text
    assert main(["data", "inspect", out, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["games"] == 3 and summary["halves"] == 6
    assert set(summary["per_split"]) == {"train", "valid", "test", "challenge"}
    assert summary["per_split"]["challenge"] == {
        **summary["per_split"]["challenge"],
        "games": 0,
        "labelled": False,
    }
    assert (summary["label_set"], summary["dtype"], summary["fps"]) == ("v1", "float32", 2.0)
    assert summary["feature_dims"] == {"video": 512, "audio": 512}
    assert "challenge" not in text  # an empty unlabelled split is not shown
    assert (
        summary["manifest"]["seed"] == 4 and summary["bytes"] > 0 and summary["missing_files"] == []
    )
    # an existing output is refused, --overwrite replaces it
    assert main(["data", "synth", "--out", out, "--games", "3", "--half-minutes", "0.2"]) == 2
    assert "already exists" in _err_line(capsys)
    assert (
        main(
            ["data", "synth", "--out", out, "--games", "3", "--half-minutes", "0.2", "--overwrite"]
        )
        == 0
    )


@pytest.mark.parametrize(
    "argv,match",
    [
        (["data", "synth", "--out", "{tmp}/t", "--games", "0"], "--games"),
        (["data", "synth", "--out", "{tmp}/t", "--half-minutes", "-1"], "--half-minutes"),
        (["data", "inspect", "{tmp}/nothing"], "not a feature table"),
        (["data", "ingest", "--soccernet", "{tmp}/nowhere", "--out", "{tmp}/t"], "not a directory"),
        (["data", "synth", "--out", "gs://bucket/t"], "unsupported scheme"),
    ],
)
def test_bad_input_exit_2(tmp_path, capsys, argv, match):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    assert match in _err_line(capsys)
    assert not (tmp_path / "t").exists()


def test_ingest_cli(tmp_path, capsys):
    import numpy as np

    game = tmp_path / "sn" / "l" / "s" / "g"
    game.mkdir(parents=True)
    for h in (1, 2):
        np.save(game / f"{h}_ResNET_PCA512.npy", np.zeros((50, 512), np.float32))
        np.save(game / f"{h}_VGGish.npy", np.zeros((52, 512), np.float32))
    (game / "Labels.json").write_text(
        json.dumps({"annotations": [{"gameTime": "1 - 00:05", "label": "y-card"}]})
    )
    split = tmp_path / "splits.json"
    split.write_text(json.dumps({"train": ["l/s/g"]}))
    out = str(tmp_path / "t")
    assert (
        main(
            [
                "data",
                "ingest",
                "--soccernet",
                str(tmp_path / "sn"),
                "--out",
                out,
                "--splits",
                str(split),
            ]
        )
        == 0
    )
    assert "ingested 1 games (2 halves, 1 events)" in capsys.readouterr().out
    out2 = str(tmp_path / "t2")
    assert (
        main(
            [
                "data",
                "ingest",
                "--soccernet",
                str(tmp_path / "sn"),
                "--out",
                out2,
                "--splits",
                str(split),
                "--max-length-diff",
                "1",
            ]
        )
        == 2
    )
    assert "differ by more than" in _err_line(capsys)
    assert not os.path.exists(out2)
    (game / "Labels.json").write_text("[oops")
    assert (
        main(
            [
                "data",
                "ingest",
                "--soccernet",
                str(tmp_path / "sn"),
                "--out",
                out2,
                "--splits",
                str(split),
            ]
        )
        == 2
    )
    assert "Labels.json: malformed" in _err_line(capsys)


def test_unreachable_endpoint_exit_2(capsys, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert (
        main(["data", "inspect", "s3://avspot/t", "--endpoint-url", f"http://127.0.0.1:{port}"])
        == 2
    )
    assert "s3://avspot/t" in _err_line(capsys)
