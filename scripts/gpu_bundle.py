"""gpu_bundle.py [--out DIR]: what the GPU check needs on a machine with torch, numpy and pyarrow
only, no package index and at most 64 MiB of files (``make gpu-check-bundle``; README, "GPU check").

DIR (default gpu_bundle/, git-ignored) gets:
  wheels/avspot-<version>-py3-none-any.whl  the project, built from the files git ships (tracked or
                                           new, not ignored), copied to a temporary folder first
  wheels/<dep>-py3-none-any.whl            each pure-Python dependency of the check that is not
                                           torch, numpy or pyarrow (today: tqdm, which the synthetic
                                           table writer imports), at the version installed here
  gpu_check.py                             benchmarks/gpu_check.py
  run.sh                                   installs wheels/ with --no-index into a temporary folder
                                           and runs gpu_check.py there with the arguments it is given
  MANIFEST.json, README.md                 every file with its size and sha256; each wheel's tag and
                                           Requires-Python; the build's commit
The bundle is refused (exit 1, nothing left in DIR) unless every wheel is pure Python
(``py3-none-any``), admits Python 3.11 and 3.12, none is torch, and the whole is under 64 MiB.
Needs pip and a package index here for the dependencies' wheels (pip's cache serves repeats).
"""

from __future__ import annotations

import argparse
import datetime
import email.parser
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

try:
    from packaging.specifiers import SpecifierSet
    from packaging.utils import parse_wheel_filename
except ImportError:  # pip vendors it
    from pip._vendor.packaging.specifiers import SpecifierSet
    from pip._vendor.packaging.utils import parse_wheel_filename

ROOT = Path(__file__).resolve().parents[1]
LIMIT_BYTES = 64 * 2**20
# What the GPU machine provides (and the check may import): never bundled.
PROVIDED = ("torch", "numpy", "pyarrow")
# Pure-Python imports of the check beyond those: avspot.datasets.progress imports tqdm.
DEPENDENCIES = ("tqdm",)
PYTHONS = ("3.11", "3.12")

RUN_SH = """#!/usr/bin/env bash
# run.sh [gpu_check.py arguments]: install this bundle's wheels (no index, no dependencies) into a
# temporary folder and run the GPU check with them, e.g.  bash gpu_bundle/run.sh --expect-gpu --out F
# PYTHON picks the interpreter (default python3: the one that has torch, numpy and pyarrow).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
py=${PYTHON:-python3}
site=$(mktemp -d "${TMPDIR:-/tmp}/avspot-gpu-site.XXXXXX")
trap 'rm -rf "$site"' EXIT
"$py" -m pip install --quiet --no-deps --no-index --no-compile --disable-pip-version-check \\
  --target "$site" "$here"/wheels/*.whl
PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" "$py" "$here/gpu_check.py" "$@"
"""


def sha256(path: Path) -> str:
    import pyarrow.fs as pafs

    from avspot.datasets.checksums import file_sha256  # the project's one file digest

    return file_sha256(pafs.LocalFileSystem(), str(path))[0]


def run(cmd: list[str], **kw: object) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"gpu_bundle.py: failed: {' '.join(cmd)}")


def git_files(root: Path) -> list[str]:
    out = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    return [f for f in out.split("\0") if f and (root / f).is_file()]


def build_avspot_wheel(dest: Path, tmp: Path) -> Path:
    """The project's wheel from a copy of what git ships (the checkout stays untouched)."""
    src = tmp / "src"
    for rel in git_files(ROOT):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel)
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(dest), str(src)])  # fmt: skip
    (wheel,) = dest.glob("avspot-*.whl")
    return wheel


def download_pure(name: str, dest: Path) -> Path:
    """The pure-Python wheel of ``name`` at the version installed here (the one tested)."""
    version = metadata.version(name)
    run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--implementation", "py", "--abi", "none", "--platform", "any", "--python-version", "3.12",
         "--dest", str(dest), f"{name}=={version}"])  # fmt: skip
    (wheel,) = (w for w in dest.glob("*.whl") if parse_wheel_filename(w.name)[0] == name)
    return wheel


def wheel_facts(wheel: Path) -> dict[str, object]:
    """Name, version, tags and Requires-Python from the wheel's own METADATA."""
    name, version, _, tags = parse_wheel_filename(wheel.name)
    with zipfile.ZipFile(wheel) as z:
        meta_name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.parser.Parser().parsestr(z.read(meta_name).decode("utf-8"))
    return {
        "file": f"wheels/{wheel.name}",
        "name": str(name),
        "version": str(version),
        "tags": sorted(str(t) for t in tags),
        "requires_python": meta.get("Requires-Python") or "",
        "bytes": wheel.stat().st_size,
        "sha256": sha256(wheel),
    }


def problems(facts: list[dict[str, object]], total: int) -> list[str]:
    """Why this bundle could not run on another Python or torch build (empty: it can)."""
    out = []
    for f in facts:
        if f["tags"] != ["py3-none-any"]:
            out.append(f"{f['file']}: tags {f['tags']}, not pure Python (py3-none-any)")
        spec = SpecifierSet(str(f["requires_python"]))
        out += [
            f"{f['file']}: Requires-Python {spec} excludes {p}" for p in PYTHONS if p not in spec
        ]
        if f["name"] in PROVIDED:
            out.append(
                f"{f['file']}: {f['name']} must come from the target machine, not the bundle"
            )
    if total >= LIMIT_BYTES:
        out.append(f"bundle is {total} bytes, over the 64 MiB a run may carry")
    return out


def readme(manifest: dict) -> str:
    rows = "\n".join(
        f"| `{f['path']}` | {f['bytes']:,} | {f.get('note', '')} |" for f in manifest["files"]
    )
    return f"""# avspot GPU-check bundle

Built {manifest["built_at"]} from commit `{manifest["git_commit"][:12]}` (dirty: {manifest["git_dirty"]})
by `make gpu-check-bundle`: {manifest["payload_bytes"]:,} bytes of wheels and scripts (a run may carry
64 MiB; MANIFEST.json lists every file with its sha256). Needs, on the
target: Python 3.11 or 3.12 with torch >= 2.11 (any CUDA build), numpy and pyarrow; no package
index, no Ray, MLflow or Optuna.

    bash run.sh --expect-gpu --out gpu_check.json

or by hand:

    python3 -m pip install --no-deps --no-index --target /tmp/avspot-gpu wheels/*.whl
    PYTHONPATH=/tmp/avspot-gpu python3 gpu_check.py --expect-gpu --out gpu_check.json

| file | bytes | what |
|---|---:|---|
{rows}
"""


def build(out: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="avspot-gpu-bundle-") as tmp_s:
        tmp = Path(tmp_s)
        stage = tmp / "bundle"
        (stage / "wheels").mkdir(parents=True)
        wheels = [build_avspot_wheel(stage / "wheels", tmp)]
        wheels += [download_pure(name, stage / "wheels") for name in DEPENDENCIES]
        shutil.copy2(ROOT / "benchmarks" / "gpu_check.py", stage / "gpu_check.py")
        (stage / "run.sh").write_text(RUN_SH)
        (stage / "run.sh").chmod(0o755)
        facts = [wheel_facts(w) for w in wheels]
        notes = {"avspot": "the project (no dependencies installed with it)",
                 "tqdm": "progress bars; imported by the synthetic table writer"}  # fmt: skip
        files: list[dict[str, object]] = [
            {"path": f["file"], "bytes": f["bytes"], "sha256": f["sha256"],
             "note": f"{notes.get(str(f['name']), '')}; {f['tags'][0]}, "
                     f"Requires-Python {f['requires_python'] or 'any'}"}  # type: ignore[index]
            for f in facts
        ]  # fmt: skip
        for rel, note in (("gpu_check.py", "the check"), ("run.sh", "install + run")):
            p = stage / rel
            files.append(
                {"path": rel, "bytes": p.stat().st_size, "sha256": sha256(p), "note": note}
            )
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"],
                                capture_output=True, text=True).stdout.strip() or "none"  # fmt: skip
        dirty = bool(subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain"],
                                    capture_output=True, text=True).stdout.strip())  # fmt: skip
        manifest = {
            "format": "avspot-gpu-bundle/1",
            "built_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "built_with": f"Python {sys.version.split()[0]}",
            "git_commit": commit,
            "git_dirty": dirty,
            "needs_on_target": {"python": ">=3.11,<3.13", "provided": list(PROVIDED)},
            "wheels": facts,
            "files": files,
        }
        manifest["payload_bytes"] = sum(int(f["bytes"]) for f in files)  # type: ignore[arg-type]
        (stage / "README.md").write_text(readme(manifest))
        (stage / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
        total = sum(p.stat().st_size for p in stage.rglob("*") if p.is_file())
        manifest["total_bytes"] = total  # the whole folder, README.md and MANIFEST.json included
        bad = problems(facts, total)
        if bad:
            raise SystemExit("gpu_bundle.py: refusing the bundle:\n  " + "\n  ".join(bad))
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(stage), str(out))
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "gpu_bundle")
    args = ap.parse_args(argv)
    manifest = build(args.out.resolve())
    for f in manifest["files"]:
        print(f"  {f['bytes']:>10,}  {f['path']}")
    print(f"gpu_bundle.py: {args.out}, {manifest['total_bytes']:,} bytes "
          f"({manifest['total_bytes'] / 2**20:.2f} MiB of 64), commit {manifest['git_commit'][:12]}"
          f"{' (dirty)' if manifest['git_dirty'] else ''}")  # fmt: skip
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    sys.exit(main())
