"""Install layouts: the folders datasets/, avmodels/ and search/ live in the avspot namespace and
never shadow installed top-level packages of the same name; editable and wheel installs both
work; the data layer and the CLI's --help import nothing heavy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str, cwd: Path, env: dict[str, str] | None = None, python: str = sys.executable):
    return subprocess.run(
        [python, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_installed_datasets_wins_over_our_folder_from_the_repository_root(tmp_path: Path) -> None:
    """`python -c "import datasets"` in the checkout finds Hugging Face's package, not ours."""
    fake = tmp_path / "site"
    for name in ("datasets", "search"):
        (fake / name).mkdir(parents=True)
        (fake / name / "__init__.py").write_text(f"WHO = 'installed {name}'\n")
    code = (
        "import sys, datasets, search\n"
        "assert datasets.WHO == 'installed datasets', datasets.__path__\n"
        "assert search.WHO == 'installed search', search.__path__\n"
        "import avspot.datasets.table as t\n"
        "from avspot.datasets.labels import CLASSES\n"
        "assert t.__name__ == 'avspot.datasets.table' and CLASSES == ('card', 'subs', 'soccer')\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(fake)}
    r = _run(code, ROOT, env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_data_layer_and_cli_parser_import_light() -> None:
    code = (
        "import sys, avspot.datasets.table, avspot.datasets.synth, avspot.datasets.soccernet, "
        "avspot.datasets.windows, avspot.datasets.inspect, "
        "avspot.datasets.labels, avspot.datasets.layout\n"
        "bad = [m for m in ('torch', 'ray', 'boto3', 'mlflow') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    r = _run(code, ROOT)
    assert r.returncode == 0, r.stderr
    code = (  # avspot --help answers fast: no torch, ray, mlflow, matplotlib or pyarrow
        "import sys, avspot.search.cli.main as c\n"
        "c.build_parser()\n"
        "bad = [m for m in ('torch', 'ray', 'mlflow', 'matplotlib', 'pyarrow') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    r = _run(code, ROOT)
    assert r.returncode == 0, r.stderr


@pytest.mark.slow
def test_wheel_install_works_without_the_checkout(tmp_path: Path) -> None:
    """Build the wheel, install it into a fresh environment that borrows only the
    dependencies, and run the package from outside the checkout."""
    wheels = tmp_path / "wheels"
    source = tmp_path / "source"  # a copy: building in place would leave build/ in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "avspot", "datasets", "avmodels", "search"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, source / name)
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheels), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    (wheel,) = wheels.glob("avspot-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "avspot/datasets/splits/SoccerNetGamesTest.json" in names
    assert "avspot/datasets/splits/SoccerNetGamesChallenge.json" in names  # SoccerNet-v2's 50
    assert {"avspot/search/cli/main.py", "avspot/search/spaces/fusion.py"} <= names
    assert not any(n.startswith(("datasets/", "search/", "avmodels/", "tests/")) for n in names)
    assert "avspot/datasets/audio/extract.py" in names
    # development servers and test fixtures stay out of the shipped library
    assert not any(n.endswith(("s3server.py", "testing.py")) for n in names)

    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = str(env_dir / "bin" / "python")
    site = _run("import sysconfig; print(sysconfig.get_paths()['purelib'])", tmp_path, None, python)
    site_dir = Path(site.stdout.strip())
    # dependencies from this environment (its .pth files, the editable finder among them, are
    # not processed for a directory added this way), avspot from the wheel only
    (site_dir / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    r = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site_dir),
         str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    code = (
        "import avspot.datasets.table as t, avspot.search.spaces as s\n"
        "from avspot.datasets.layout import official_games\n"
        f"assert t.__file__.startswith({str(site_dir)!r}), t.__file__\n"
        "assert len(official_games('test')) == 100 and 'smoke' in s.available_spaces()\n"
        "from avspot.search.cli.main import main\n"
        "raise SystemExit(main(['--version']))\n"
    )
    r = _run(code, tmp_path, {"PATH": os.environ.get("PATH", "")}, python)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0.1.0"
