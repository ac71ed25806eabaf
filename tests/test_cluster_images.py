"""A cluster that boots without installing anything, statically (no Docker engine, no AWS here): one
image per role built from scripts/cluster/*.Dockerfile by build_images.sh (run against a fake `docker`
and `aws`), and `ray up` only through scripts/cluster/up.sh, which resolves the AMI from SSM and the
image digests from dist/IMAGES; the committed cluster.yaml is refused by Ray itself."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support import cluster as C

SCRIPTS = C.SCRIPTS
DOCKERFILES = {
    "head": "rayproject/ray:2.60.0-py311-cpu",
    "worker": "rayproject/ray:2.60.0-py311-gpu",
    "mlflow": "python:3.11-slim",
}


@pytest.fixture(autouse=True)
def _no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any AWS API call through botocore raises (the scripts use the fake CLI instead)."""
    import botocore.client

    def refuse(self, operation_name, api_params):  # noqa: ANN001, ANN202
        raise AssertionError(f"AWS call attempted: {operation_name}")

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", refuse)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def raw_config() -> dict:
    return yaml.safe_load(C.CLUSTER_YAML.read_text(encoding="utf-8"))


def run(argv: list[str], env: dict[str, str], **kw) -> subprocess.CompletedProcess:  # noqa: ANN003
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, **kw)


def test_the_committed_config_is_refused_by_ray_before_any_aws_call() -> None:
    import jsonschema
    from ray.autoscaler._private.commands import _bootstrap_config
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = raw_config()
    with pytest.raises(jsonschema.ValidationError, match="UNRESOLVED_run_scripts_cluster_up_sh"):
        validate_config(prepare_config(config))
    # What `ray up cluster.yaml` runs first: it stops at the schema (an AWS call would raise
    # AssertionError instead; Ray only warns about its resource probe).
    with pytest.raises(jsonschema.ValidationError):
        _bootstrap_config(raw_config(), no_config_cache=True)
    # Without the key, EC2 would still get ami-unresolved, which is no AMI id.
    assert {t["node_config"]["ImageId"] for t in config["available_node_types"].values()} == {
        "ami-unresolved"
    }


@pytest.mark.parametrize("role", sorted(DOCKERFILES))
def test_one_dockerfile_per_role(role: str) -> None:
    lines = (SCRIPTS / f"{role}.Dockerfile").read_text().splitlines()
    froms = [line.split()[1] for line in lines if line.startswith("FROM ")]
    assert froms == [DOCKERFILES[role]], froms
    text = "\n".join(lines)
    runs = " ".join(line for line in lines if not line.startswith("#"))
    assert "--constraint" in runs and "constraints.txt" in runs, "every version pinned"
    if role in ("head", "worker"):
        assert "./avspot-*.whl" in runs and "sha256sum --check --strict" in runs
        assert " -e " not in runs and "--editable" not in runs
        assert "BUILD_ID" in text, "the image carries its build id (check_image.sh)"
    else:
        assert '"mlflow[auth]"' in text and "psycopg2-binary" in text and "USER mlflow" in text
        assert "rayproject" not in runs, "MLflow needs neither Ray nor CUDA"
    # The config names an image for this role, and build_images.sh builds it from this file.
    assert f"/avspot-{role}:unresolved" in C.CLUSTER_YAML.read_text()
    build = (SCRIPTS / "build_images.sh").read_text()
    assert "roles=(head worker mlflow)" in build and '--file "$here/$role.Dockerfile"' in build


def fake_docker(bin_dir: Path) -> Path:
    """`docker` that logs its arguments and reads login passwords; `inspect` answers a digest."""
    digests = " ".join(f"{role}={d}" for role, d in C.DIGESTS.items())
    return C.write_exe(
        bin_dir / "docker",
        "#!/usr/bin/env bash\n"
        'echo "docker $*" >> "$DOCKER_LOG"\n'
        'if [[ $1 == login ]]; then read -r pw; echo "password $pw" >> "$DOCKER_LOG"; fi\n'
        "if [[ $1 == inspect ]]; then\n"
        "  image=${@: -1}; repo=${image%:*}; role=${repo##*/avspot-}\n"
        f'  for kv in {digests}; do [[ ${{kv%%=*}} == "$role" ]] && echo "$repo@sha256:${{kv#*=}}"; done\n'
        "fi\n"
        "exit 0\n",
    )


@pytest.fixture
def tools(tmp_path: Path) -> tuple[dict[str, str], Path]:
    bin_dir = tmp_path / "bin"
    C.fake_aws(bin_dir)
    fake_docker(bin_dir)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "AWS_LOG": str(tmp_path / "aws.log"),
        "DOCKER_LOG": str(tmp_path / "docker.log"),
    }
    return env, bin_dir


def test_build_images_builds_pushes_and_records_digests(tools, tmp_path: Path) -> None:
    env, _ = tools
    dist = C.make_dist(tmp_path / "dist", images=None)
    env.update(AVSPOT_DIST_DIR=str(dist), SKIP_DIST="1")
    out = run(["bash", str(SCRIPTS / "build_images.sh"), C.REGISTRY], env)
    assert out.returncode == 0, out.stderr
    log = (tmp_path / "docker.log").read_text().splitlines()
    assert log[0] == f"docker login --username AWS --password-stdin {C.REGISTRY.split('/')[0]}"
    assert log[1] == "password fake-token"  # from `aws ecr get-login-password`, on stdin only
    for role in DOCKERFILES:
        image = f"{C.REGISTRY}/avspot-{role}:{C.BUILD_ID}"
        build = next(
            shlex.split(line) for line in log if line.startswith("docker build") and image in line
        )
        assert build[build.index("--file") + 1] == str(SCRIPTS / f"{role}.Dockerfile")
        assert build[-1] == str(dist), "dist/ is the build context"
        assert f"docker push {image}" in log
    aws_log = (tmp_path / "aws.log").read_text()
    for role in DOCKERFILES:  # missing repositories are created immutable
        assert f"ecr create-repository --region eu-west-1 --repository-name avspot/avspot-{role} " \
               "--image-tag-mutability IMMUTABLE" in aws_log  # fmt: skip
    images = (dist / "IMAGES").read_text()
    for role, digest in C.DIGESTS.items():
        assert f"AVSPOT_IMAGE_{role.upper()}={C.REGISTRY}/avspot-{role}@sha256:{digest}" in images
    assert f"AVSPOT_BUILD_ID={C.BUILD_ID}" in images
    # What it wrote is what up.sh reads.
    assert C.resolver().read_images(dist)["worker"].endswith(C.DIGESTS["worker"])


def run_up(env: dict[str, str], tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    ray_log = tmp_path / "ray.log"
    fake_ray = C.write_exe(
        tmp_path / "bin" / "ray",
        f'#!/usr/bin/env bash\necho "ray $*" >> {ray_log}\ncp "$2" {tmp_path / "seen.yaml"}\n',
    )
    env = {**env, "PYTHON": sys.executable, "RAY": str(fake_ray), "AWS": "aws",
           "OUT": str(tmp_path / "build" / "resolved.yaml")}  # fmt: skip
    return run(["bash", str(SCRIPTS / "up.sh"), *args], env)


def test_up_resolves_the_ami_and_images_then_runs_ray_up(tools, tmp_path: Path) -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    env, _ = tools
    env["AVSPOT_DIST_DIR"] = str(C.make_dist(tmp_path / "dist"))
    out = run_up(env, tmp_path, "--yes", "--no-config-cache")
    assert out.returncode == 0, out.stderr
    resolved = tmp_path / "build" / "resolved.yaml"
    assert (tmp_path / "ray.log").read_text().split() == [
        "ray", "up", str(resolved), "--yes", "--no-config-cache"
    ]  # fmt: skip
    config = yaml.safe_load((tmp_path / "seen.yaml").read_text())
    assert {t["node_config"]["ImageId"] for t in config["available_node_types"].values()} == {C.AMI}
    meta = config["metadata"]["avspot"]["resolved"]
    assert (meta["ami"], meta["region"], meta["ami_name"]) == (C.AMI, "eu-west-1", C.AMI_NAME)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", meta["resolved_at"])
    assert meta["build_id"] == C.BUILD_ID and set(meta["images"]) == set(DOCKERFILES)
    assert "unresolved" not in resolved.read_text().lower()
    validate_config(prepare_config(config))  # what Ray refused before, it now takes
    aws = (tmp_path / "aws.log").read_text()
    assert ("ssm get-parameter --region eu-west-1 --name /aws/service/deeplearning/ami/x86_64/"
            "base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id") in aws  # fmt: skip
    assert f"ec2 describe-images --region eu-west-1 --image-ids {C.AMI}" in aws
    assert f"{C.AMI}" in out.stdout and "eu-west-1" in out.stdout


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no-parameter", "ParameterNotFound"),
        ("not-an-ami", "not an AMI id"),
        ("arm64", "not available/x86_64"),
        ("other-ami", "not a 'Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04)'"),
        ("no-images", "build_images.sh REGISTRY first"),
        ("stale-images", "run scripts/cluster/build_images.sh REGISTRY again"),
        ("already-resolved", "resolved already"),
    ],
)
def test_up_refuses_what_it_cannot_resolve(case: str, message: str, tools, tmp_path: Path) -> None:
    env, bin_dir = tools
    ssm, images = f"echo {C.AMI}", None
    if case == "no-parameter":
        ssm = "echo 'An error occurred (ParameterNotFound) when calling GetParameter' >&2; exit 254"
    elif case == "not-an-ami":
        ssm = "echo None"
    elif case == "arm64":
        images = C.image_json(arch="arm64")
    elif case == "other-ami":
        images = C.image_json(
            name="Deep Learning OSS Nvidia Driver AMI GPU PyTorch 2.8 (Ubuntu 24.04)"
        )
    C.fake_aws(bin_dir, ssm=ssm, images=images)
    dist = C.make_dist(tmp_path / "dist", images=None if case == "no-images" else "default")
    if case == "stale-images":
        (dist / "BUILD_ID").write_text("fedcba9876543210\n")
    env["AVSPOT_DIST_DIR"] = str(dist)
    if case == "already-resolved":
        resolved = tmp_path / "once.yaml"
        resolved.write_text(yaml.safe_dump(C.resolved_config(raw_config(), tmp_path / "w")))
        env["CONFIG"] = str(resolved)
    out = run_up(env, tmp_path, "--yes")
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stderr and out.stderr.count("\n") == 1, out.stderr  # one line
    assert not (tmp_path / "ray.log").exists(), "ray up must not run"
    assert not (tmp_path / "build" / "resolved.yaml").exists()


def test_up_dry_run_writes_the_config_only(tools, tmp_path: Path) -> None:
    env, _ = tools
    env["AVSPOT_DIST_DIR"] = str(C.make_dist(tmp_path / "dist"))
    out = run_up(env, tmp_path, "--dry-run")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == str(tmp_path / "build" / "resolved.yaml")
    assert not (tmp_path / "ray.log").exists()


@pytest.mark.parametrize(
    ("baked", "dist_id", "code", "message"),
    [
        (C.BUILD_ID, C.BUILD_ID, 0, "image and dist/ are build"),
        ("fedcba9876543210", C.BUILD_ID, 1, "build_images.sh REGISTRY, then scripts/cluster/up.sh"),
        (None, C.BUILD_ID, 1, "not an avspot image"),
    ],
)
def test_check_image(
    tmp_path: Path, baked: str | None, dist_id: str, code: int, message: str
) -> None:
    dist = C.make_dist(tmp_path / "dist", build_id=dist_id, images=None)
    baked_file = tmp_path / "image" / "BUILD_ID"
    if baked is not None:
        baked_file.parent.mkdir()
        baked_file.write_text(baked + "\n")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "AVSPOT_DIST_DIR": str(dist),
           "AVSPOT_IMAGE_BUILD_FILE": str(baked_file)}  # fmt: skip
    out = run(["bash", str(SCRIPTS / "check_image.sh")], env)
    assert out.returncode == code and message in out.stdout + out.stderr


def test_registry_login(tools, tmp_path: Path) -> None:
    env, _ = tools
    dist = C.make_dist(tmp_path / "dist")
    out = run(["bash", str(SCRIPTS / "registry_login.sh"), str(dist / "IMAGES")], env)
    assert out.returncode == 0, out.stderr
    host = C.REGISTRY.split("/")[0]
    assert (
        f"docker login --username AWS --password-stdin {host}"
        in (tmp_path / "docker.log").read_text()
    )
    assert "ecr get-login-password --region eu-west-1" in (tmp_path / "aws.log").read_text()
    (dist / "IMAGES").write_text(
        (dist / "IMAGES").read_text().replace(host, "registry.example:5000")
    )
    (tmp_path / "docker.log").unlink()
    out = run(["bash", str(SCRIPTS / "registry_login.sh"), str(dist / "IMAGES")], env)
    assert (
        out.returncode == 0 and "not ECR" in out.stdout and not (tmp_path / "docker.log").exists()
    )
    missing = run(["bash", str(SCRIPTS / "registry_login.sh"), str(tmp_path / "none")], env)
    assert missing.returncode == 1 and "build_images.sh" in missing.stderr


def test_every_cluster_script_parses() -> None:
    for path in sorted(SCRIPTS.glob("*.sh")):
        subprocess.run(["bash", "-n", str(path)], check=True, timeout=30)
    compile((SCRIPTS / "resolve_config.py").read_text(), "resolve_config.py", "exec")
