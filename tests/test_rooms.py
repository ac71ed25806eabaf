"""The shape of the codebase: no import cycles between avspot modules (lazy imports inside
functions count: they are dependencies too), no module over 600 lines, dependencies pointing one
way (search -> avmodels -> datasets), and argument parsing only in the CLI layer."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"datasets": "avspot.datasets", "avmodels": "avspot.avmodels", "search": "avspot.search"}
MAX_LINES = 500
# Modules that parse their own arguments: the CLI layer only.
ARGPARSE_ALLOWED = ("avspot.search.cli.",)


def _modules() -> dict[str, Path]:
    mods = {}
    for folder, name in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.with_suffix("").relative_to(ROOT / folder).parts
            mods[".".join((name, *(p for p in parts if p != "__init__")))] = path
    mods["avspot.__main__"] = ROOT / "avspot" / "__main__.py"
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    deps: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                deps.add(candidate if candidate in mods else base)
        elif isinstance(node, ast.Import):
            deps.update(alias.name for alias in node.names)
    return {d for d in deps if d in mods and d != name and mods[d].name != "__init__.py"}


def _graph() -> tuple[dict[str, Path], dict[str, set[str]]]:
    mods = _modules()
    return mods, {name: _imports(name, path, mods) for name, path in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    _, graph = _graph()
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_over_500_lines() -> None:
    mods, _ = _graph()
    big = {
        name: n for name, p in mods.items() if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert big == {}


def test_dependencies_point_one_way() -> None:
    _, graph = _graph()
    order = ["avspot.datasets.", "avspot.avmodels.", "avspot.search."]
    for module, deps in graph.items():
        layer = next((i for i, p in enumerate(order) if module.startswith(p)), len(order))
        for dep in deps:
            dep_layer = next(i for i, p in enumerate(order) if dep.startswith(p))
            assert dep_layer <= layer, f"{module} imports {dep}"


# The rooms inside search/, top to bottom (docs/architecture.md): each imports only those below.
SEARCH_ROOMS = ["cli", "tuning", "reporting", "tracking", "plots", "spaces"]


def _search_room(module: str) -> int:
    part = module.split(".")[2]
    return SEARCH_ROOMS.index(part)


def test_the_rooms_inside_search_point_one_way() -> None:
    _, graph = _graph()
    for module, deps in graph.items():
        if not module.startswith("avspot.search."):
            continue
        for dep in deps:
            if dep.startswith("avspot.search.") and _search_room(dep) < _search_room(module):
                raise AssertionError(f"{module} imports {dep}, a room above it")


def test_every_search_module_has_a_room() -> None:
    mods, _ = _graph()
    rooms = {m.split(".")[2] for m in mods if m.startswith("avspot.search.")}
    assert rooms <= set(SEARCH_ROOMS), rooms - set(SEARCH_ROOMS)


AUDIO = "avspot.datasets.audio."


def test_the_audio_extractor_is_a_room_of_its_own() -> None:
    """datasets/audio/ (PyAV, torch, Ray Data) is used by the command line only: the rest of the
    data layer stays numpy + pyarrow, and no model or search code depends on media decoding."""
    _, graph = _graph()
    for module, deps in graph.items():
        if module.startswith(AUDIO) or module.startswith("avspot.search.cli."):
            continue
        assert not [d for d in deps if d.startswith(AUDIO)], f"{module} imports the audio room"


def test_only_the_cli_parses_arguments() -> None:
    mods, _ = _graph()
    users = [
        name
        for name, path in mods.items()
        if "argparse"
        in {
            a.name
            for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.Import)
            for a in n.names
        }
    ]
    assert [u for u in users if not u.startswith(ARGPARSE_ALLOWED)] == []
