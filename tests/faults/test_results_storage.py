"""A results or storage location that cannot be written (no permission, disk full): exit 2 with
one line naming the path, before any work (nothing waited for or retried), and nothing
half-written.

Tests run as root here, and root writes into read-only directories: the writes happen in a
thread without CAP_DAC_OVERRIDE (``no_dac_override``), as an ordinary user would. A full disk
is a file size limit (RLIMIT_FSIZE, with SIGXFSZ ignored: writes then fail with EFBIG) in a
subprocess, or an ENOSPC from a monkeypatched write where the limit is not realistic.
"""

from __future__ import annotations

import errno
import subprocess
from pathlib import Path

import pytest

from avspot.datasets.synth import synthesize
from avspot.search.cli.main import main


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> str:
    uri = str(tmp_path_factory.mktemp("results") / "table")
    synthesize(uri, games=3, seed=1, half_minutes=0.5)
    return uri


def _one_line(capsys: pytest.CaptureFixture[str], *names: str) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("avspot: error: "), lines
    assert all(n in lines[0] for n in names), (names, lines[0])
    return lines[0]


@pytest.mark.parametrize("command", ["synth", "train", "search", "report"])
def test_read_only_output_location(
    kit, table: str, tmp_path: Path, capsys, fake_clock, monkeypatch, command: str
) -> None:
    from tests.support import testing as F

    monkeypatch.chdir(tmp_path)
    store = F.sqlite_store(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    locked = kit.read_only_dir(tmp_path / "locked")
    target = str(locked / "out")
    if command == "report":  # an experiment to report on, so that the output is what fails
        from avspot.search.tracking.runs import finish_search_run, start_search_run

        finish_search_run(start_search_run("exp", {"space": "smoke"}))
    args = {
        "synth": ["data", "synth", "--out", target, "--games", "2", "--half-minutes", "0.5"],
        "train": ["train", "--data", table, "--out", target, "--set", "max_epochs=1"],
        "search": ["search", "--data", table, "--space", "smoke", "--storage", target],
        "report": ["report", "--experiment", "exp", "--out", target],
    }[command]
    before = kit.snapshot(tmp_path)
    from avspot.avmodels.trainer import Trainer

    fits: list[object] = []
    monkeypatch.setattr(Trainer, "fit", lambda self, *a, **k: fits.append(a))
    capsys.readouterr()  # the setup's output (MLflow's first store creation logs on stderr)
    with kit.no_dac_override():
        code = main(args)
    assert code == 2
    line = _one_line(capsys, str(locked))
    assert "ermission denied" in line or "cannot write" in line, line
    assert kit.snapshot(tmp_path) == before  # nothing half-written, nowhere
    assert fits == [] and fake_clock.sleeps == []  # refused before training, nothing waited for
    if command == "search":  # refused before the parent run was opened
        from mlflow import MlflowClient

        assert MlflowClient(store).search_experiments(filter_string="name = 'avspot-smoke'") == []


def test_disk_full_while_writing_a_table(kit, tmp_path: Path) -> None:
    """`data synth` hits a 256 KiB file size limit (EFBIG, as a full disk gives ENOSPC): one
    line naming the table, exit 2, no table and no staging directory left."""
    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))\n"
        "from avspot.search.cli.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    out = tmp_path / "table"
    res = subprocess.run(
        [kit.AVSPOT[0], "-c", code, "data", "synth", "--out", str(out), "--games", "4",
         "--half-minutes", "2", "--quiet"],
        capture_output=True, text=True, timeout=120, env=kit.quiet_env(),
    )  # fmt: skip
    assert res.returncode == 2, res.stderr[-2000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("avspot: error: "), lines
    assert str(out) in lines[0] and "File too large" in lines[0], lines[0]
    assert list(tmp_path.iterdir()) == [], list(tmp_path.iterdir())


def test_disk_full_while_writing_train_results(table: str, tmp_path: Path, capsys, monkeypatch):
    """`train --out` runs out of space on its last file: exit 2, one line naming that file, and
    none of the four outputs appears (they are renamed into place together)."""
    import avspot.datasets.atomic as atomic

    real = atomic.write_json_atomic

    def full_disk(path, content, indent=None):  # noqa: ANN001, ANN202
        if str(path).endswith("results.json"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, content, indent)

    monkeypatch.setattr("avspot.search.cli.train.write_json_atomic", full_disk)
    out = tmp_path / "out"
    assert main(["train", "--data", table, "--out", str(out), "--set", "max_epochs=1",
                 "--quiet"]) == 2  # fmt: skip
    line = _one_line(capsys, "results.json", "No space left on device")
    assert "\n" not in line
    assert not out.exists()  # not even the directory: this call created it
