"""The fault-injection suite's fixtures and its opt-in marker.

``@pytest.mark.faults`` marks the long cases (a search with a fault injected while it runs):
they run only with AVSPOT_FAULTS=1 (RELIABILITY.md has the commands). ``kit`` gives the tests
the helpers of ``kit.py``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

HERE = Path(__file__).resolve().parent
FAULTS = os.environ.get("AVSPOT_FAULTS") == "1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "faults: a long fault-injection case, run only with AVSPOT_FAULTS=1"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(
        reason="long fault-injection case: set AVSPOT_FAULTS=1 (RELIABILITY.md)"
    )
    for item in items:
        if item.get_closest_marker("faults") is not None and not FAULTS:
            item.add_marker(skip)


def load(name: str) -> ModuleType:
    """A helper module of this folder, by path (tests import in importlib mode)."""
    key = f"avspot_faults_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, HERE / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


@pytest.fixture()
def kit() -> ModuleType:
    """The helpers of ``kit.py``."""
    return load("kit")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``bad_case``: every case of ``bad_inputs.CASES``, by id."""
    if "bad_case" in metafunc.fixturenames:
        cases = load("bad_inputs").CASES
        metafunc.parametrize("bad_case", cases, ids=[c.id for c in cases])


@pytest.fixture(scope="session")
def bad_inputs() -> ModuleType:
    """The cases and runner of ``bad_inputs.py``."""
    return load("bad_inputs")


@pytest.fixture(scope="session")
def bad_workspace(bad_inputs: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The inputs the bad-input cases read (tables, SoccerNet tree, MLflow store...)."""
    ws = tmp_path_factory.mktemp("bad-inputs")
    bad_inputs.build_workspace(ws)
    return ws
