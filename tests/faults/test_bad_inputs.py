"""The bad-input policy, case by case (RELIABILITY.md's table is generated from the same list,
``bad_inputs.CASES``): exit 2, exactly one line on stderr that starts with ``avspot: error:``
and names the file or parameter, nothing new in the workspace or the output location, and an
answer without any wait (no retry, no backoff: ``Outcome.waits``; the seconds it took are
measured and printed, not asserted)."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def test_bad_input(bad_case, bad_inputs: ModuleType, bad_workspace: Path, kit, tmp_path: Path):
    out = bad_inputs.run_case(bad_case, bad_workspace, tmp_path / "out", kit.no_dac_override)
    assert out.code == 2, (out.code, out.stderr)
    assert len(out.stderr) == 1 and out.stderr[0].startswith("avspot: error: "), out.stderr
    names = bad_case.names.format(ws=bad_workspace, tmp=tmp_path / "out")
    assert names in out.stderr[0], (names, out.stderr[0])
    assert bad_inputs.SECRET not in out.stderr[0]
    assert out.new_files == set(), out.new_files
    assert out.waits == [], out.waits
    print(f"{bad_case.id}: {out.seconds:.2f}s")


def test_the_policy_covers_every_command(bad_inputs: ModuleType) -> None:
    commands = {c.command.split()[-1] for c in bad_inputs.CASES}
    want = {"ingest", "synth", "inspect", "train", "search", "spot", "evaluate", "promote"}
    assert want | {"report"} <= commands
    assert len(bad_inputs.CASES) >= 30
    assert len({c.id for c in bad_inputs.CASES}) == len(bad_inputs.CASES)


def test_reliability_md_lists_every_case(bad_inputs: ModuleType) -> None:
    """The table in RELIABILITY.md is generated from CASES (scripts/reliability_table.py):
    same ids, same commands, same order."""
    text = (ROOT / "RELIABILITY.md").read_text()
    block = text.split("<!-- bad-inputs:begin -->")[1].split("<!-- bad-inputs:end -->")[0]
    rows = re.findall(r"^\| `([a-z0-9-]+)` \| `avspot ([^`]*)` \|", block, re.M)
    want = [(c.id, bad_inputs.display(c)) for c in bad_inputs.CASES]
    assert rows == want
