"""Regenerate the bad-input table of RELIABILITY.md from the test's own case list.

    .venv/bin/python scripts/reliability_table.py          # run every case, rewrite the table
    .venv/bin/python scripts/reliability_table.py --check  # exit 1 if a case is not in the table

The cases live in tests/faults/bad_inputs.py (``CASES``), which tests/faults/test_bad_inputs.py
runs too; the table shows each case's command, exit code, the one line it printed and the
seconds it took here. The part of RELIABILITY.md between the ``bad-inputs`` markers is replaced.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "RELIABILITY.md"
BEGIN, END = "<!-- bad-inputs:begin -->", "<!-- bad-inputs:end -->"


def _load(name: str) -> ModuleType:
    key = f"avspot_faults_{name}"
    spec = importlib.util.spec_from_file_location(key, ROOT / "tests" / "faults" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(bad: ModuleType, kit: ModuleType) -> str:
    """Run every case in a scratch workspace; the Markdown table of what each did."""
    rows = [
        "| case | command | bad input | exit | stderr (the one line; WS = the workspace) | s |",
        "|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory(prefix="avspot-bad-inputs-") as d:
        ws = Path(d) / "ws"
        bad.build_workspace(ws)
        for i, case in enumerate(bad.CASES):
            tmp = Path(d) / f"out{i}"
            out = bad.run_case(case, ws, tmp, kit.no_dac_override)
            line = " / ".join(out.stderr)
            line = line.replace(str(tmp), "OUT").replace(str(ws), "WS")
            ok = out.code == 2 and len(out.stderr) == 1 and not out.new_files
            mark = "" if ok else " **(policy not met)**"
            rows.append(
                f"| `{case.id}` | `avspot {bad.display(case)}` | {_cell(case.problem)} | "
                f"{out.code}{mark} | {_cell(line)} | {out.seconds:.2f} |"
            )
            print(f"{case.id}: exit {out.code} in {out.seconds:.2f}s", file=sys.stderr)
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="only check that every case is listed")
    args = p.parse_args(argv)
    bad, kit = _load("bad_inputs"), _load("kit")
    text = DOC.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    if args.check:
        missing = [c.id for c in bad.CASES if f"| `{c.id}` |" not in rest.split(END, 1)[0]]
        print("missing: " + ", ".join(missing) if missing else "every case is listed")
        return 1 if missing else 0
    DOC.write_text(f"{head}{BEGIN}\n{table(bad, kit)}\n{END}{tail}")
    print(f"wrote {DOC.relative_to(ROOT)}: {len(bad.CASES)} bad inputs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
