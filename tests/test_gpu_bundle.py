"""`make gpu-check-bundle` (scripts/gpu_bundle.py): a bundle under 64 MiB of pure-Python wheels that
admit Python 3.12, no torch in it, and the GPU check running from it in a fresh virtualenv that has
only torch, numpy and pyarrow (borrowed from this environment with a .pth file, nothing downloaded):
with no GPU it says so and exits 0 after a CPU smoke; with --expect-gpu it exits 1."""

from __future__ import annotations

import email.parser
import json
import os
import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 64 * 2**20


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_closure(names: tuple[str, ...]) -> dict[str, metadata.Distribution]:
    """The installed distributions ``names`` need at run time (no extras), themselves included."""
    env = {**default_environment(), "extra": ""}
    seen: dict[str, metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = todo.pop()
        if _norm(name) in seen:
            continue
        dist = metadata.distribution(name)
        seen[_norm(name)] = dist
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate(env):
                todo.append(req.name)
    return seen


def borrowed_site(dest: Path, names: tuple[str, ...]) -> list[str]:
    """A folder of links to the top-level modules of ``names`` and what they need, nothing else."""
    dest.mkdir(parents=True)
    dists = runtime_closure(names)
    for dist in dists.values():
        base = Path(str(dist.locate_file("")))
        tops = {f.parts[0] for f in dist.files or [] if f.parts[0] not in ("..", "__pycache__")}
        for top in tops:
            if (base / top).exists() and not (dest / top).exists():
                (dest / top).symlink_to(base / top)
    return sorted(dists)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "gpu_bundle"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_bundle.py"), "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "MiB of 64" in proc.stdout
    return out


def wheel_metadata(wheel: Path) -> tuple[dict[str, str], list[str], list[str]]:
    """(METADATA headers, WHEEL's Tag lines and Root-Is-Purelib, member names) from inside."""
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        wheel_file = next(n for n in names if n.endswith(".dist-info/WHEEL"))
        meta = email.parser.Parser().parsestr(z.read(info).decode())
        wheel_info = email.parser.Parser().parsestr(z.read(wheel_file).decode())
    tags = wheel_info.get_all("Tag") or []
    return dict(meta.items()), [*tags, f"purelib={wheel_info['Root-Is-Purelib']}"], names


@pytest.mark.slow
def test_bundle_is_small_pure_python_and_torch_free(bundle: Path) -> None:
    files = [p for p in bundle.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < LIMIT
    wheels = sorted((bundle / "wheels").glob("*.whl"))
    names = {w.name.split("-")[0].lower() for w in wheels}
    assert "avspot" in names and "tqdm" in names
    assert not {"torch", "numpy", "pyarrow", "ray", "mlflow", "optuna"} & names
    for wheel in wheels:
        assert wheel.name.endswith("-py3-none-any.whl"), wheel.name
        meta, tags, members = wheel_metadata(wheel)
        assert tags == ["py3-none-any", "purelib=true"], (wheel.name, tags)
        assert not [m for m in members if m.endswith((".so", ".pyd", ".dylib"))], wheel.name
        spec = SpecifierSet(meta.get("Requires-Python", ""))
        assert "3.12" in spec and "3.11" in spec, (wheel.name, str(spec))
    manifest = json.loads((bundle / "MANIFEST.json").read_text())
    listed = {f["path"] for f in manifest["files"]}
    assert {f"wheels/{w.name}" for w in wheels} | {"gpu_check.py", "run.sh"} == listed
    assert (bundle / "gpu_check.py").read_bytes() == (ROOT / "benchmarks/gpu_check.py").read_bytes()
    assert "run.sh --expect-gpu" in (bundle / "README.md").read_text()


@pytest.mark.slow
def test_check_runs_from_the_bundle_with_only_torch_numpy_pyarrow(
    bundle: Path, tmp_path: Path
) -> None:
    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True, timeout=300)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    borrowed = borrowed_site(tmp_path / "borrowed", ("torch", "numpy", "pyarrow"))
    assert not {"ray", "mlflow", "optuna", "tqdm", "avspot", "pandas"} & set(borrowed)
    (Path(purelib) / "borrowed.pth").write_text(str(tmp_path / "borrowed") + "\n")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "PYTHON": str(python),
        "CUDA_VISIBLE_DEVICES": "",  # no GPU even where there is one: the no-GPU paths are tested
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    probe = (
        "import importlib.util as u, torch, numpy, pyarrow\n"
        "print([m for m in ('ray', 'mlflow', 'optuna', 'tqdm', 'avspot') if u.find_spec(m)])\n"
    )
    isolated = subprocess.run(
        [str(python), "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert isolated.returncode == 0, isolated.stderr
    assert isolated.stdout.strip() == "[]", "the fresh venv sees more than torch, numpy, pyarrow"

    out = tmp_path / "no_gpu.json"
    run = subprocess.run(
        ["bash", str(bundle / "run.sh"), "--out", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "no CUDA device" in run.stdout and "CPU smoke" in run.stdout
    report = json.loads(out.read_text())
    assert report["mode"] == "cpu-smoke" and report["status"] == "ok"
    assert str(ROOT) not in report["environment"]["avspot"], "ran the checkout, not the bundle"
    assert report["environment"]["python_executable"] == str(python)
    for section in ("train", "spotting", "feed"):
        assert report[section] and all("error" not in r for r in report[section]), section
    assert len(report["trainer"]["epochs"]) == 2
    assert {r["split_on"] for r in report["feed"]} == {"host", "stream"}  # the trial's StreamFeed
    assert {r["precision"] for r in report["train"]} == {"fp32", "bf16"}

    expect = subprocess.run(
        ["bash", str(bundle / "run.sh"), "--expect-gpu", "--out", str(tmp_path / "e.json")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert expect.returncode == 1, expect.stdout + expect.stderr
    assert "--expect-gpu" in expect.stderr and "no CUDA device" in expect.stderr
    assert json.loads((tmp_path / "e.json").read_text())["status"] == "no-gpu"
