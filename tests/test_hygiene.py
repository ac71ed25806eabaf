"""Hygiene of the tests themselves: no assertion on wall-clock time (a loaded machine makes them
fail; assert the behaviour and inject a clock, ``tests/support/clock.py``), and `make test` runs
what the README says it runs."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The clocks a test could time itself with (``time.X()`` or ``X()`` imported from time).
CLOCKS = frozenset(
    {"monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns", "time", "time_ns"}
)
_APPENDERS = frozenset({"append", "extend", "add", "insert", "update", "setdefault"})


def _clock_call(node: ast.AST, from_time: set[str]) -> bool:
    """``time.monotonic()`` and the like, or a bare ``monotonic()`` imported from time."""
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    if isinstance(f, ast.Attribute) and f.attr in CLOCKS:
        return isinstance(f.value, ast.Name) and f.value.id == "time"
    return isinstance(f, ast.Name) and f.id in from_time


def _base(target: ast.AST) -> str | None:
    """The name a target binds or writes into: ``x``, ``x[k]``, ``x.attr`` -> ``x``."""
    while isinstance(target, ast.Subscript | ast.Attribute | ast.Starred):
        target = target.value
    return target.id if isinstance(target, ast.Name) else None


class _Timed:
    """What carries a reading of the clock: names (per top-level scope, nested functions
    included) and the fields of dataclasses built from one (``Outcome(code, seconds)`` makes
    ``.seconds`` timed wherever it is read, in this module or another)."""

    def __init__(self, tree: ast.Module, fields: frozenset[str] = frozenset()) -> None:
        self.tree = tree
        self.from_time = {
            a.asname or a.name
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and n.module == "time"
            for a in n.names
            if a.name in CLOCKS
        }
        self.fields = set(fields)
        self.classes = {
            n.name: [s.target.id for s in n.body
                     if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)]
            for n in ast.walk(tree) if isinstance(n, ast.ClassDef)
        }  # fmt: skip
        functions = (ast.FunctionDef, ast.AsyncFunctionDef)
        self.scopes: list[ast.AST] = [n for n in tree.body if isinstance(n, functions)]
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            self.scopes += [n for n in cls.body if isinstance(n, functions)]
        rest = [n for n in tree.body if n not in self.scopes and not isinstance(n, ast.ClassDef)]
        self.scopes.append(ast.Module(body=rest, type_ignores=[]))
        self.names: dict[int, set[str]] = {}
        while True:  # to a fixed point: a field found in one scope is read in another
            before = len(self.fields)
            self.names = {i: self._names(s) for i, s in enumerate(self.scopes)}
            if len(self.fields) == before:
                break

    def reads(self, node: ast.AST, names: set[str]) -> bool:
        for n in ast.walk(node):
            if _clock_call(n, self.from_time):
                return True
            if isinstance(n, ast.Name) and n.id in names:
                return True
            if isinstance(n, ast.Attribute) and n.attr in self.fields:
                return True
        return False

    def _names(self, scope: ast.AST) -> set[str]:
        names: set[str] = set()
        while True:
            before = (len(names), len(self.fields))
            for n in ast.walk(scope):
                if isinstance(n, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.NamedExpr):
                    targets = n.targets if isinstance(n, ast.Assign) else [n.target]
                    if n.value is not None and self.reads(n.value, names):
                        names.update(b for t in targets if (b := _base(t)))
                if not isinstance(n, ast.Call):
                    continue
                f = n.func
                if (
                    isinstance(f, ast.Attribute)
                    and f.attr in _APPENDERS
                    and any(self.reads(a, names) for a in n.args)
                    and (b := _base(f.value))
                ):
                    names.add(b)  # calls.append(time.monotonic())
                if isinstance(f, ast.Name) and f.id in self.classes:
                    fields = self.classes[f.id]
                    pairs = [*zip(fields, n.args, strict=False)]
                    pairs += [(k.arg, k.value) for k in n.keywords if k.arg in fields]
                    self.fields.update(fd for fd, arg in pairs if self.reads(arg, names))
            if (len(names), len(self.fields)) == before:
                return names

    def assertions(self) -> list[int]:
        """Line numbers of the assertions whose condition reads the clock."""
        return sorted(
            n.lineno
            for i, scope in enumerate(self.scopes)
            for n in ast.walk(scope)
            if isinstance(n, ast.Assert) and self.reads(n.test, self.names[i])
        )


def timed_assertions(source: str, fields: frozenset[str] = frozenset()) -> list[int]:
    """Line numbers of the assertions in ``source`` whose condition reads the clock (``fields``:
    dataclass fields other modules fill from one)."""
    return _Timed(ast.parse(source), fields).assertions()


def _timed_assertions_in_tests() -> dict[str, list[int]]:
    sources = {str(p.relative_to(ROOT)): p.read_text() for p in (ROOT / "tests").rglob("*.py")}
    fields = frozenset().union(*(_Timed(ast.parse(s)).fields for s in sources.values()))
    found = {path: timed_assertions(src, fields) for path, src in sources.items()}
    return {path: lines for path, lines in found.items() if lines}


def test_no_test_asserts_on_wall_clock_time() -> None:
    found = _timed_assertions_in_tests()
    assert found == {}, (
        "assertions on elapsed wall-clock time (assert the behaviour; inject a clock, "
        f"tests/support/clock.py): {found}"
    )


@pytest.mark.parametrize(
    "body",
    [
        "t0 = time.monotonic()\nwork()\nassert time.monotonic() - t0 < 5",
        "t0 = time.perf_counter()\nwork()\nelapsed = time.perf_counter() - t0\nassert elapsed < 5",
        "calls = []\ncalls.append(time.time())\nassert calls[1] - calls[0] > 0.4",
        "from time import monotonic as now\nt = now()\nassert 1 < now() - t",
        "done = {}\ndef inner():\n    done['s'] = time.monotonic()\ninner()\nassert done['s'] > 5",
        "assert time.time() > 0",
    ],
)
def test_the_check_sees_timed_assertions(body: str) -> None:
    source = f"import time\n\ndef test_x():\n{textwrap.indent(body, '    ')}\n"
    assert timed_assertions(source), source


def test_the_check_sees_a_measured_field() -> None:
    source = textwrap.dedent(
        """
        import time
        from dataclasses import dataclass

        @dataclass
        class Outcome:
            code: int
            seconds: float

        def run() -> Outcome:
            t0 = time.monotonic()
            return Outcome(0, time.monotonic() - t0)

        def test_x():
            out = run()
            assert out.code == 0
            assert out.seconds < 20
        """
    )
    assert timed_assertions(source) == [17]


@pytest.mark.parametrize(
    "body",
    [
        # a deadline that only stops a wait from hanging, then a behaviour asserted
        "deadline = time.monotonic() + 60\nwhile not ready() and time.monotonic() < deadline:\n"
        "    pass\nassert ready()",
        # a duration measured and printed, not asserted
        "t0 = time.perf_counter()\nwork()\nprint(f'{time.perf_counter() - t0:.1f}s')\nassert ok()",
        # a safety net against hanging
        "t.join(timeout=60)\nassert not t.is_alive()",
        # the clock a test injects
        "clock = FakeClock()\nwork(clock)\nassert clock.sleeps == [0.5, 1.0]",
    ],
)
def test_the_check_leaves_behaviour_alone(body: str) -> None:
    source = f"import time\n\ndef test_x():\n{textwrap.indent(body, '    ')}\n"
    assert timed_assertions(source) == [], source


# ---- make test: what the README says ----------------------------------------------------------


def _make_n(target: str) -> list[str]:
    """The commands ``make -n target`` would run (the venv's stamp taken as up to date)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = subprocess.run(
        ["make", "-n", "-o", ".venv/.installed", "-o", ".venv/bin/python", target],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [line.strip() for line in out.splitlines() if line.strip()]


def test_make_test_lints_then_runs_the_tests() -> None:
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"^make test +# lint, then unit \+ integration tests", readme, re.M)
    commands = _make_n("test")
    check = next(i for i, c in enumerate(commands) if re.search(r"ruff check \.$", c))
    fmt = next(i for i, c in enumerate(commands) if re.search(r"ruff format --check \.$", c))
    tests = next(i for i, c in enumerate(commands) if re.search(r"-m pytest -q$", c))
    assert check < fmt < tests, commands  # lint first, then every test (no marker filter)


def test_ci_runs_the_readme_command_once() -> None:
    """`.ci/run` runs `make test` (the README's command, lint included) and lints only there."""
    script = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert "make test" in script
    assert not [line for line in script if "lint" in line or "ruff" in line], script
