"""Verified tables: the manifest records each part's size and sha256; `data inspect` checks
sizes and footers (everything with --verify) and names a bad part; train, search and spot
refuse such a table with the same message before any work; old manifests still load."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from avspot.datasets.errors import DataError
from avspot.datasets.manifest import MANIFEST_NAME, SCHEMA_VERSION, read_manifest
from avspot.datasets.synth import synthesize
from avspot.datasets.verify import check_table
from avspot.search.cli.main import main


@pytest.fixture(scope="module")
def table_bytes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("verified") / "t"
    synthesize(str(root), games=4, seed=2, half_minutes=0.5)
    return root


@pytest.fixture()
def table(table_bytes: Path, tmp_path: Path) -> Path:
    """A fresh copy of a small synthetic table for each test to damage."""
    import shutil

    dest = tmp_path / "t"
    shutil.copytree(table_bytes, dest)
    return dest


def _part(table: Path, split: str = "train") -> tuple[Path, str]:
    m = json.loads((table / MANIFEST_NAME).read_text())
    rel = next(f["path"] for f in m["files"] if f["split"] == split)
    return table / rel, rel


def _row_group_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every row group (data pages) any Parquet reader decodes from here on, recorded."""
    import pyarrow.parquet as pq

    reads: list[int] = []
    real = pq.ParquetFile.read_row_group

    def read_row_group(self, i, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        reads.append(i)
        return real(self, i, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", read_row_group)
    return reads


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("avspot: error: "), lines
    return lines[0]


def test_manifest_records_sizes_and_checksums(table: Path) -> None:
    m = read_manifest(str(table))
    assert m.schema_version == SCHEMA_VERSION == 3
    for f in m.files:
        data = (table / f["path"]).read_bytes()
        assert f["bytes"] == len(data)
        assert f["sha256"] == hashlib.sha256(data).hexdigest()
    assert check_table(str(table), deep=True).fingerprint == m.fingerprint


@pytest.mark.integration
def test_checksums_on_s3_match_the_objects(s3) -> None:
    uri = s3.uri("sums")
    m = synthesize(uri, games=2, seed=1, half_minutes=0.5, endpoint=s3.endpoint)
    prefix = uri.split("/", 3)[3]
    for f in m.files:
        body = s3.client().get_object(Bucket=s3.bucket, Key=f"{prefix}/{f['path']}")["Body"]
        data = body.read()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (f["bytes"], f["sha256"])
    assert check_table(uri, s3.endpoint, deep=True).fingerprint == m.fingerprint


@pytest.mark.parametrize(
    ("damage", "expect"),
    [
        ("truncate", "truncated or replaced"),
        ("delete", "is missing"),
        ("footer", "unreadable Parquet footer"),
    ],
)
def test_inspect_names_the_bad_part(
    table: Path, capsys, fake_clock, monkeypatch, damage: str, expect: str
) -> None:
    part, rel = _part(table)
    data = part.read_bytes()
    if damage == "truncate":
        part.write_bytes(data[: len(data) // 2])
    elif damage == "delete":
        part.unlink()
    else:  # same size, the footer's magic bytes overwritten
        part.write_bytes(data[:-4] + b"XXXX")
    reads = _row_group_reads(monkeypatch)
    assert main(["data", "inspect", str(table)]) == 2
    line = _err(capsys)
    assert rel in line and expect in line, line
    # at once: sizes and footers only (no data page decoded), not retried as an outage
    assert reads == [] and fake_clock.sleeps == []


def test_verify_reads_every_byte(table: Path, capsys) -> None:
    part, rel = _part(table, "valid")
    data = bytearray(part.read_bytes())
    data[len(data) // 3] ^= 0xFF  # one flipped bit in the data pages: size and footer intact
    part.write_bytes(bytes(data))
    assert main(["data", "inspect", str(table)]) == 0  # the cheap check cannot see it
    capsys.readouterr()
    assert main(["data", "inspect", str(table), "--verify"]) == 2
    line = _err(capsys)
    assert rel in line and "sha256" in line, line


def test_a_v1_manifest_still_loads_and_verifies(table: Path, capsys) -> None:
    """Tables written before checksums (schema v1) load, inspect and verify (content digests)."""
    m = json.loads((table / MANIFEST_NAME).read_text())
    m["schema_version"] = 1
    for f in m["files"]:
        del f["sha256"]
    (table / MANIFEST_NAME).write_text(json.dumps(m))
    assert main(["data", "inspect", str(table), "--verify"]) == 0
    assert "no checksums recorded" in capsys.readouterr().out
    part, rel = _part(table, "test")
    data = bytearray(part.read_bytes())
    data[len(data) // 3] ^= 0xFF
    part.write_bytes(bytes(data))
    with pytest.raises(DataError, match="test|fingerprint"):
        check_table(str(table), deep=True)


@pytest.mark.parametrize("command", ["train", "search", "spot"])
def test_train_search_and_spot_refuse_a_bad_table(
    table: Path, tmp_path: Path, capsys, fake_clock, monkeypatch, command: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'never.db'}")
    part, rel = _part(table)
    part.write_bytes(part.read_bytes()[:-100])
    out = tmp_path / "out"
    args = {
        "train": ["train", "--data", str(table), "--out", str(out)],
        "search": ["search", "--data", str(table), "--space", "smoke", "--storage", str(out)],
        "spot": [
            "spot",
            "--model",
            str(tmp_path / "m.pt"),
            "--data",
            str(table),
            "--out",
            str(out),
        ],
    }[command]
    reads = _row_group_reads(monkeypatch)
    assert main(args) == 2
    line = _err(capsys)
    assert f"part {rel} has" in line and "truncated" in line, line
    assert reads == [] and fake_clock.sleeps == []  # refused before any half was read
    assert not out.exists() and not (tmp_path / "never.db").exists()  # no work started
