"""Test doubles for the cluster scripts: a fake `aws` (canned SSM and EC2 answers), a fake `dist/` with
the IMAGES file build_images.sh writes, and cluster.yaml resolved the way scripts/cluster/up.sh does it.
No AWS is called: the fake CLI answers from its script and logs every call."""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts" / "cluster"
CLUSTER_YAML = ROOT / "cluster.yaml"
AMI = "ami-0fedcba9876543210"
AMI_NAME = "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) 20261127"
AMI_CREATED = "2026-11-27T10:11:12.000Z"
BUILD_ID = "0123456789abcdef"
REGISTRY = "111122223333.dkr.ecr.eu-west-1.amazonaws.com/avspot"
DIGESTS = {role: f"{i}" * 64 for i, role in enumerate(("head", "worker", "mlflow"), start=1)}


def write_exe(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def image_json(name: str = AMI_NAME, arch: str = "x86_64", state: str = "available") -> str:
    return json.dumps({"name": name, "created": AMI_CREATED, "arch": arch, "state": state})


def fake_aws(bin_dir: Path, *, ssm: str = f"echo {AMI}", images: str | None = None) -> Path:
    """An `aws` on ``bin_dir`` that logs its arguments to $AWS_LOG and answers `ssm get-parameter`
    with the shell snippet ``ssm`` and `ec2 describe-images` with ``images`` (JSON); ECR login and
    repository calls succeed (describe-repositories: not found, so create-repository runs)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    images = image_json() if images is None else images
    return write_exe(
        bin_dir / "aws",
        "#!/usr/bin/env bash\n"
        'echo "$*" >> "${AWS_LOG:-/dev/null}"\n'
        'case "$1 $2" in\n'
        f'  "ssm get-parameter") {ssm} ;;\n'
        f"  \"ec2 describe-images\") echo '{images}' ;;\n"
        '  "ecr get-login-password") echo fake-token ;;\n'
        '  "ecr describe-repositories") exit 254 ;;\n'
        '  "ecr create-repository") echo "{}" ;;\n'
        '  *) echo "fake aws: unexpected $*" >&2; exit 3 ;;\n'
        "esac\n",
    )


def images_text(build_id: str = BUILD_ID) -> str:
    lines = [
        f"AVSPOT_BUILD_ID={build_id}",
        f"AVSPOT_IMAGE_TAG={build_id}",
        f"AVSPOT_REGISTRY={REGISTRY}",
    ]
    lines += [
        f"AVSPOT_IMAGE_{role.upper()}={REGISTRY}/avspot-{role}@sha256:{digest}"
        for role, digest in DIGESTS.items()
    ]
    return "# fake build_images.sh output\n" + "\n".join(lines) + "\n"


def make_dist(path: Path, *, build_id: str = BUILD_ID, images: str | None = "default") -> Path:
    """A dist/ folder with BUILD_ID and (unless ``images`` is None) IMAGES."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "BUILD_ID").write_text(build_id + "\n")
    if images is not None:
        (path / "IMAGES").write_text(images_text(build_id) if images == "default" else images)
    return path


def resolver() -> ModuleType:
    """scripts/cluster/resolve_config.py as a module."""
    spec = importlib.util.spec_from_file_location("resolve_config", SCRIPTS / "resolve_config.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def resolved_config(config: dict, work: Path) -> dict:
    """``config`` (the committed cluster.yaml, parsed) resolved as up.sh does, against the fake aws
    and a fake dist/ under ``work``."""
    bin_dir = work / "aws-bin"
    fake_aws(bin_dir)
    dist = make_dist(work / "dist")
    old = os.environ.get("AWS")
    os.environ["AWS"] = str(bin_dir / "aws")
    try:
        when = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)
        return resolver().resolve(config, dist, when)
    finally:
        if old is None:
            os.environ.pop("AWS", None)
        else:
            os.environ["AWS"] = old
