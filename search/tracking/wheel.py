"""A pure-Python wheel of the installed avspot, shipped inside every logged model.

``mlflow models serve`` (without ``--env-manager local``) builds a fresh environment from the
model's requirements.txt; ``avspot==<version>`` is on no package index, so the model carries its
own wheel (``artifacts/avspot-<version>-py3-none-any.whl``, referenced by a relative path that
MLflow resolves inside the model directory). The wheel is assembled from the files of the
importable ``avspot`` packages rather than built with pip: an editable checkout has no wheel,
and building one needs setuptools and the network, which a trial on a cluster node may lack.
Its metadata declares no dependencies: the model's requirements.txt pins what serving needs.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import os
import tempfile
import zipfile
from pathlib import Path

PACKAGES = ("avspot", "avspot.datasets", "avspot.avmodels", "avspot.search")
_DATA_SUFFIXES = (".py", ".json")  # modules and package data (the official split lists)


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("avspot")
    except PackageNotFoundError:  # pragma: no cover - an uninstalled tree
        return "0+unknown"


def _package_files() -> dict[str, Path]:
    """{path inside the wheel: source file} of every module and data file of avspot."""
    files: dict[str, Path] = {}
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(f"cannot locate package {name}")
        root = Path(next(iter(spec.submodule_search_locations)))
        prefix = name.replace(".", "/")
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if path.suffix not in _DATA_SUFFIXES or "__pycache__" in rel.parts:
                continue
            if name == "avspot" and len(rel.parts) > 1:
                continue  # only avspot/__main__.py: the sub-packages come from their own roots
            files.setdefault(f"{prefix}/{rel.as_posix()}", path)
    return files


def build_id() -> str:
    """sha256 over the installed avspot's modules and data files (path and content): two
    processes run the same code exactly when their build ids agree. A cluster search compares
    every node's with the driver's."""
    digest = hashlib.sha256()
    for arcname, path in sorted(_package_files().items()):
        digest.update(arcname.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def build_wheel(out_dir: str | os.PathLike[str]) -> Path:
    """Write ``avspot-<version>-py3-none-any.whl`` into ``out_dir``; its path."""
    version = package_version()
    dist = f"avspot-{version.replace('-', '_')}"
    info = f"{dist}.dist-info"
    out = Path(out_dir) / f"{dist}-py3-none-any.whl"
    meta = {
        f"{info}/METADATA": (
            f"Metadata-Version: 2.1\nName: avspot\nVersion: {version}\n"
            "Summary: avspot model code (serving copy; dependencies pinned by the model)\n"
        ).encode(),
        f"{info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: avspot\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".tmp-", suffix=".whl")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            entries = {arc: src.read_bytes() for arc, src in _package_files().items()}
            for arcname, data in [*entries.items(), *meta.items()]:
                zf.writestr(arcname, data)
                record.append(_record_line(arcname, data))
            record.append(f"{info}/RECORD,,")
            zf.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
