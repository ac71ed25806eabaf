"""Files appear whole or not at all: write to a temporary name beside the target, then rename."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


def write_atomic(path: str | os.PathLike[str], write: Callable[[str], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place:
    readers see the old file or the complete new one, never a half-written one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _jsonable(o: Any) -> Any:
    if hasattr(o, "tolist"):  # numpy arrays and scalars
        return o.tolist()
    raise TypeError(f"not JSON-able: {type(o).__name__}")


def write_json_atomic(
    path: str | os.PathLike[str], content: Any, indent: int | None = None
) -> Path:
    """``content`` as JSON at ``path`` (numpy values converted), atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(content, f, indent=indent, default=_jsonable)

    return write_atomic(path, write)


def write_files_atomic(
    directory: str | os.PathLike[str], writers: Mapping[str, Callable[[str], Any]]
) -> list[Path]:
    """Files that appear together or not at all: ``writers[name](path)`` writes each into a
    staging directory inside ``directory``, and only when all are written are they renamed into
    place (a rename does not fail for want of space). On failure nothing new is left, not even
    ``directory`` when this call created it."""
    directory = Path(directory)
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    try:
        staging = Path(tempfile.mkdtemp(dir=directory, prefix=".tmp-"))
        try:
            for name, write in writers.items():
                write(str(staging / name))
            out = []
            for name in writers:
                os.replace(staging / name, directory / name)
                out.append(directory / name)
            return out
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        if created:
            shutil.rmtree(directory, ignore_errors=True)
        raise
