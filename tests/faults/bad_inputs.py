"""The bad inputs of RELIABILITY.md: each case, the workspace it needs, and how it is run.

Used by ``test_bad_inputs.py`` (every case: exit 2, one line on stderr naming the file or
parameter, nothing new in the workspace or output location, an answer without any wait: no
retry, no backoff; the seconds it took are measured for the table, not asserted) and by
``scripts/reliability_table.py`` (which runs them and writes the table), so the two cannot drift.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Case:
    """One bad input: ``args`` (``{ws}`` the shared workspace, ``{tmp}`` this case's output
    location, ``{closed}`` a port where nothing listens), what must be named in the line."""

    id: str
    command: str
    args: str
    names: str
    problem: str
    env: dict[str, str] = field(default_factory=dict)
    read_only: bool = False  # writes without CAP_DAC_OVERRIDE (as a non-root user)
    process: bool = False  # a real `python -m avspot` process instead of main() in process

    def argv(self, ws: Path, tmp: Path, closed: int) -> list[str]:
        return [a.format(ws=ws, tmp=tmp, closed=closed) for a in shlex.split(self.args)]


S3_KEYS = {"AWS_ACCESS_KEY_ID": "bad-inputs-key", "AWS_SECRET_ACCESS_KEY": "bad-inputs-secret"}
DOWN = "http://127.0.0.1:{closed}"
C = Case
CASES: list[Case] = [
    # data synth
    C("synth-games", "data synth", "data synth --out {tmp}/t --games 0", "--games",
      "zero games"),
    C("synth-minutes", "data synth", "data synth --out {tmp}/t --half-minutes -1",
      "--half-minutes", "negative half length"),
    C("synth-labels", "data synth", "data synth --out {tmp}/t --labels v3", "--labels",
      "unknown --labels (label set)"),
    C("synth-dtype", "data synth", "data synth --out {tmp}/t --dtype float64", "--dtype",
      "unknown --dtype"),
    C("synth-exists", "data synth", "data synth --out {ws}/table --games 1", "{ws}/table",
      "a table already there, no --overwrite"),
    C("synth-file", "data synth", "data synth --out {ws}/afile --games 1", "{ws}/afile",
      "--out is a file"),
    C("synth-scheme", "data synth", "data synth --out ftp://host/t --games 1", "ftp://host/t",
      "unsupported URI scheme"),
    C("synth-endpoint", "data synth",
      "data synth --out s3://b/t --games 1 --endpoint-url ftp://x", "ftp://x",
      "malformed --endpoint-url"),
    C("synth-s3-down", "data synth",
      f"data synth --out s3://b/t --games 1 --endpoint-url {DOWN}", "s3://b/t",
      "S3 endpoint unreachable", env=S3_KEYS, process=True),
    C("synth-read-only", "data synth", "data synth --out {ws}/ro/t --games 1", "{ws}/ro",
      "--out in a read-only directory", read_only=True),
    # data ingest
    C("ingest-root", "data ingest", "data ingest --soccernet {ws}/nope --out {tmp}/t",
      "--soccernet", "no such SoccerNet folder"),
    C("ingest-length-diff", "data ingest",
      "data ingest --soccernet {ws}/sn --out {tmp}/t --max-length-diff -1",
      "--max-length-diff", "negative --max-length-diff"),
    C("ingest-splits-file", "data ingest",
      "data ingest --soccernet {ws}/sn --out {tmp}/t --splits {ws}/none.json",
      "--splits", "split file does not exist"),
    C("ingest-no-labels", "data ingest",
      "data ingest --soccernet {ws}/sn --out {tmp}/t --splits {ws}/sn-nolabels.json",
      "Labels.json", "a game without Labels.json"),
    C("ingest-bad-labels", "data ingest",
      "data ingest --soccernet {ws}/sn --out {tmp}/t --splits {ws}/sn-badlabels.json",
      "Labels.json", "malformed Labels.json"),
    C("ingest-shape", "data ingest",
      "data ingest --soccernet {ws}/sn --out {tmp}/t --splits {ws}/sn-shape.json",
      "1_ResNET_PCA512.npy", "video width changing between games (one width per table)"),
    C("ingest-labels", "data ingest", "data ingest --soccernet {ws}/sn --out {tmp}/t --labels v3",
      "--labels", "unknown --labels (label set)"),
    C("ingest-dtype", "data ingest",
      "data ingest --soccernet {ws}/sn --out {tmp}/t --dtype float64", "--dtype",
      "unknown --dtype"),
    C("ingest-fps", "data ingest", "data ingest --soccernet {ws}/sn --out {tmp}/t --fps 0",
      "--fps", "zero --fps"),
    C("ingest-v2-label", "data ingest",
      "data ingest --soccernet {ws}/sn --out {tmp}/t --labels v2 --splits {ws}/sn-v2label.json",
      "Labels-v2.json: annotation 0: unknown label 'Dive'", "an unknown SoccerNet-v2 label"),
    C("ingest-no-audio-file", "data ingest",
      "data ingest --soccernet {ws}/sn --out {tmp}/t --splits {ws}/sn-noaudio.json",
      "1_VGGish.npy", "a missing audio file without --audio-features none"),
    # data inspect
    C("inspect-not-table", "data inspect", "data inspect {ws}/notatable", "{ws}/notatable",
      "a folder that is not a table"),
    C("inspect-truncated", "data inspect", "data inspect {ws}/truncated", "split=train/part-",
      "a truncated part"),
    C("inspect-manifest", "data inspect", "data inspect {ws}/badmanifest", "manifest.json",
      "malformed manifest.json"),
    C("inspect-newer", "data inspect", "data inspect {ws}/newer", "schema version 99",
      "a table from a newer avspot"),
    C("inspect-verify", "data inspect", "data inspect {ws}/flipped --verify",
      "split=valid/part-", "a flipped bit (checksum)"),
    # train
    C("train-no-table", "train", "train --data {ws}/nope --out {tmp}/o", "{ws}/nope",
      "no table at --data"),
    C("train-set-key", "train", "train --data {ws}/table --set bogus=1", "bogus",
      "unknown --set key"),
    C("train-set-value", "train", "train --data {ws}/table --set lr=abc", "lr",
      "--set value of the wrong type"),
    C("train-set-syntax", "train", "train --data {ws}/table --set lr", "--set",
      "--set without '='"),
    C("train-bad-part", "train", "train --data {ws}/truncated --out {tmp}/o",
      "split=train/part-", "a table with a truncated part", process=True),
    C("train-read-only", "train", "train --data {ws}/table --out {ws}/ro/o", "{ws}/ro",
      "--out in a read-only directory", read_only=True),
    # search
    C("search-space", "search", "search --data {ws}/table --space nope", "--space",
      "unknown search space", process=True),
    C("search-trials", "search", "search --data {ws}/table --space smoke --trials 0",
      "--trials", "zero trials"),
    C("search-plan", "search", "search --data {ws}/table --space smoke --max-concurrent 8",
      "--max-concurrent", "more trials at once than CPUs"),
    C("search-resume", "search",
      "search --data {ws}/table --space smoke --resume --storage {tmp}/rr", "--resume",
      "--resume with nothing to resume"),
    C("search-metric", "search", "search --data {ws}/table --space smoke --metric bogus",
      "--metric", "unknown --metric"),
    C("search-bad-part", "search",
      "search --data {ws}/truncated --space smoke --storage {tmp}/rr", "split=train/part-",
      "a table with a truncated part"),
    C("search-read-only", "search",
      "search --data {ws}/table --space smoke --storage {ws}/ro/rr", "{ws}/ro",
      "--storage in a read-only directory", read_only=True),
    C("search-s3-storage-down", "search",
      f"search --data {{ws}}/table --space smoke --storage s3://b/rr --endpoint-url {DOWN}",
      "s3://b/rr", "S3 --storage unreachable", env=S3_KEYS),
    C("search-mlflow-down", "search",
      "search --data {ws}/table --space smoke --storage {tmp}/rr", "MLflow tracking server",
      "tracking server unreachable", env={"MLFLOW_TRACKING_URI": DOWN}),
    C("search-mlflow-file", "search",
      "search --data {ws}/table --space smoke --storage {tmp}/rr", "file:",
      "a file: tracking URI", env={"MLFLOW_TRACKING_URI": "file:///tmp/mlruns"}),
    # spot
    C("spot-model", "spot", "spot --model {ws}/none.pt --data {ws}/table --out {tmp}/p",
      "--model", "no such model file"),
    C("spot-alias", "spot",
      "spot --model models:/avspot-spotter@champion --data {ws}/table --out {tmp}/p",
      "--model models:/avspot-spotter@champion", "no @champion in the registry"),
    C("spot-bad-part", "spot", "spot --model {ws}/none.pt --data {ws}/truncated --out {tmp}/p",
      "split=train/part-", "a table with a truncated part"),
    C("spot-read-only", "spot", "spot --model {ws}/none.pt --data {ws}/table --out {ws}/ro/p",
      "{ws}/ro", "--out in a read-only directory", read_only=True),
    C("spot-split", "spot", "spot --model {ws}/none.pt --data {ws}/table --out {tmp}/p "
      "--split nope", "--split", "unknown --split"),
    # evaluate
    C("evaluate-labels", "evaluate", "evaluate --labels {ws}/nope --predictions {ws}/preds",
      "--labels", "no such labels folder"),
    C("evaluate-predictions", "evaluate",
      "evaluate --labels {ws}/table --predictions {ws}/nope", "--predictions",
      "no such predictions folder"),
    C("evaluate-json", "evaluate",
      "evaluate --labels {ws}/labels --predictions {ws}/preds-bad", "results_spotting.json",
      "malformed results_spotting.json"),
    C("evaluate-game", "evaluate",
      "evaluate --labels {ws}/table --predictions {ws}/preds", "results_spotting.json",
      "predictions of a game the labels do not have"),
    # promote
    C("promote-experiment", "promote", "promote --experiment nope", "nope",
      "unknown experiment"),
    C("promote-challenger", "promote", "promote --experiment nochallenger", "nochallenger",
      "an experiment without a challenger"),
    C("promote-mlflow-down", "promote", "promote --experiment x", "MLflow tracking server",
      "tracking server unreachable (password in the URI)", process=True,
      env={"MLFLOW_TRACKING_URI": "http://avspot:hunter2@127.0.0.1:{closed}"}),
    C("promote-file-uri", "promote", "promote --experiment x", "file:",
      "a file: tracking URI", env={"MLFLOW_TRACKING_URI": "file:///tmp/mlruns"}),
    # report
    C("report-experiment", "report", "report --experiment nope --out {tmp}/r", "nope",
      "unknown experiment"),
    C("report-out-file", "report", "report --experiment nochallenger --out {ws}/afile",
      "{ws}/afile", "--out is a file"),
    C("report-read-only", "report", "report --experiment nochallenger --out {ws}/ro/r",
      "{ws}/ro", "--out in a read-only directory", read_only=True),
]  # fmt: skip
SECRET = "hunter2"  # a password in a case's tracking URI: it must not be printed


def display(case: Case) -> str:
    """The command as RELIABILITY.md shows it: placeholders for the workspace's paths."""
    return case.args.format(ws="WS", tmp="OUT", closed="CLOSED")


# ---- the workspace --------------------------------------------------------------------------


def closed_port() -> int:
    """A loopback port where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _game(
    root: Path,
    key: str,
    *,
    labels: str | None,
    width: int = 512,
    seed: int = 0,
    labels_file: str = "Labels.json",
    audio: bool = True,
) -> None:
    import numpy as np

    d = root / key
    d.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for half in (1, 2):
        for stem, w in (("ResNET_PCA512", width), ("VGGish", 512) if audio else (None, 0)):
            if stem is not None:
                x = rng.standard_normal((60, w)).astype(np.float32)
                np.save(d / f"{half}_{stem}.npy", x)
    if labels is not None:
        (d / labels_file).write_text(labels)


def build_workspace(ws: Path) -> None:
    """The inputs every case reads: tables (good and damaged), a SoccerNet tree with broken
    games, predictions, an MLflow store with an experiment without a challenger, a read-only
    directory."""
    from avspot.datasets.synth import synthesize

    ws.mkdir(parents=True, exist_ok=True)
    table = ws / "table"
    synthesize(str(table), games=3, seed=1, half_minutes=0.5)
    manifest = json.loads((table / "manifest.json").read_text())
    by_split = {f["split"]: f["path"] for f in manifest["files"]}
    for name in ("truncated", "flipped", "newer", "badmanifest"):
        shutil.copytree(table, ws / name)
    part = ws / "truncated" / by_split["train"]
    part.write_bytes(part.read_bytes()[:-500])
    part = ws / "flipped" / by_split["valid"]
    data = bytearray(part.read_bytes())
    data[len(data) // 3] ^= 0xFF
    part.write_bytes(bytes(data))
    (ws / "newer" / "manifest.json").write_text(json.dumps({**manifest, "schema_version": 99}))
    (ws / "badmanifest" / "manifest.json").write_text("{not json")
    (ws / "notatable").mkdir()
    (ws / "notatable" / "readme.txt").write_text("not a table")
    (ws / "afile").write_text("a file")
    sn = ws / "sn"
    good = '{"annotations": [{"gameTime": "1 - 00:10", "label": "y-card"}]}'
    dive = '{"annotations": [{"gameTime": "1 - 00:10", "label": "Dive", "position": "10000"}]}'
    for key, labels, width, extra in (
        ("l/s/nolabels", None, 512, {}),
        ("l/s/badlabels", "{broken", 512, {}),
        ("l/s/shape", good, 100, {}),
        ("l/s/v2label", dive, 512, {"labels_file": "Labels-v2.json"}),
        ("l/s/noaudio", good, 512, {"audio": False}),
        ("l/s/good", good, 512, {}),
    ):
        _game(sn, key, labels=labels, width=width, **extra)
        split = {"train": [key], "valid": ["l/s/good"], "test": []}
        (ws / f"sn-{key.split('/')[-1]}.json").write_text(json.dumps(split))
    preds = ws / "preds" / "l" / "s" / "g"
    preds.mkdir(parents=True)
    (preds / "results_spotting.json").write_text(json.dumps({"predictions": []}))
    _game(ws / "labels", "l/s/g", labels=good)
    bad = ws / "preds-bad" / "l" / "s" / "g"
    bad.mkdir(parents=True)
    (bad / "results_spotting.json").write_text("{broken")
    _store(ws)
    ro = ws / "ro"
    ro.mkdir()
    ro.chmod(0o555)


def _store(ws: Path) -> None:
    """ws/mlflow.db: experiment 'nochallenger' with one finished search run, no model."""
    from avspot.search.tracking.runs import finish_search_run, start_search_run
    from tests.support import testing as F

    uri = F.sqlite_store(ws)
    with environment({"MLFLOW_TRACKING_URI": uri}):
        finish_search_run(start_search_run("nochallenger", {"space": "smoke"}))


# ---- running a case -------------------------------------------------------------------------


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def snapshot(*roots: Path) -> set[str]:
    return {str(p) for r in roots if r.exists() for p in r.rglob("*")}


@dataclass
class Outcome:
    code: int
    stderr: list[str]
    seconds: float  # measured for RELIABILITY.md's table (not asserted: the machine may be busy)
    new_files: set[str]
    waits: list[float]  # every wait avspot asked for (storage.CLOCK): retries, backoff, locks


def run_case(
    case: Case,
    ws: Path,
    tmp: Path,
    no_dac_override: Callable[[], Any] = contextlib.nullcontext,
) -> Outcome:
    """Run ``case`` (in process through ``main``, or as a process) with the workspace's MLflow
    store; what it exits with, what it printed on stderr, how long it took, what it left, what
    it waited for."""
    from avspot.search.cli.main import main
    from tests.support.clock import RECORDING_MAIN, RecordingClock, installed

    closed = closed_port()
    argv = case.argv(ws, tmp, closed)
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{ws / 'mlflow.db'}", "AWS_ENDPOINT_URL": ""}
    env.update({k: v.format(closed=closed) for k, v in case.env.items()})
    tmp.mkdir(parents=True, exist_ok=True)
    before = snapshot(ws, tmp)
    t0 = time.monotonic()
    if case.process:
        fd, waits_file = tempfile.mkstemp(prefix="avspot-waits-", suffix=".json")
        os.close(fd)
        try:
            res = subprocess.run(
                [sys.executable, "-c", RECORDING_MAIN, waits_file, *argv, "--quiet"],
                env={**os.environ, **env},
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=120,
            )
            waits = json.loads(Path(waits_file).read_text() or "null")
        finally:
            os.unlink(waits_file)
        code, err = res.returncode, res.stderr
    else:
        clock = RecordingClock()
        waits = clock.sleeps
        out, errs = io.StringIO(), io.StringIO()
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            with (
                environment(env),
                contextlib.redirect_stdout(out),
                contextlib.redirect_stderr(errs),
                no_dac_override() if case.read_only else contextlib.nullcontext(),
                installed(clock),
            ):
                try:
                    code = main([*argv, "--quiet"])
                except SystemExit as exc:  # argparse
                    code = int(exc.code or 0)
        finally:
            os.chdir(cwd)
        err = errs.getvalue()
    seconds = time.monotonic() - t0
    return Outcome(code, err.strip().splitlines(), seconds, snapshot(ws, tmp) - before, waits)
