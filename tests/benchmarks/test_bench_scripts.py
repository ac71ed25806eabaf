"""The benchmark scripts still run after modules move: each one at a tiny size, in its own process.

They print figures and assert nothing about time; these tests only check that a script runs to
the end and prints its reproduce line (a renamed import or command broke two of them once).
The Ray-based ones (platform, validation, the search replay) have their own tests or run in
`make bench`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CASES = {
    "evaluate": ["bench_evaluate.py", "--games", "2", "--repeats", "1"],
    "data": [
        "bench_data.py",
        "--synth-games", "2", "--ingest-games", "2", "--sizes", "2", "--half-minutes", "1",
    ],
    "sliding": [
        "bench_sliding.py", "--configs", "netvlad64_raw", "--strides", "2", "--frames", "400",
    ],
    "models": ["bench_models.py", "--configs", "netvlad64_raw", "--iters", "1", "--warmup", "0",
               "--batch", "8"],
    "audio": ["bench_audio_extract.py", "--minutes", "0.1"],
    "checkpoint": ["bench_checkpoint.py", "--fusion", "video", "--clusters", "4", "--save"],
    "feed": ["bench_feed.py", "--games", "3", "--half-minutes", "2", "--epochs", "2"],
    "half_precision": ["bench_half_precision.py", "--games", "1", "--half-minutes", "0.5",
                       "--repeats", "1"],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CASES))
def test_benchmark_script_runs(name: str, tmp_path: Path) -> None:
    script, *args = CASES[name]
    if name == "data":
        args += ["--workdir", str(tmp_path / "work")]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "reproduce" in proc.stdout
