"""cluster.yaml against Ray's own schema, config preparation and AWS bootstrap steps, and the scripts
it runs (scripts/cluster/), all without AWS: any AWS API call fails the test. The config checked is the
one `ray up` gets: cluster.yaml resolved as scripts/cluster/up.sh does it, against a fake `aws` and a
fake dist/IMAGES (tests/support/cluster.py); tests/test_cluster_images.py checks that resolution, the
images and the scripts that build them.

The node-side scripts run here for real, in temporary folders, through the same bash wrapper Ray
uses for setup and start commands (`bash --login -c -i 'source ~/.bashrc; ...'`).
"""

from __future__ import annotations

import configparser
import copy
import hashlib
import http.server
import ipaddress
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.support import cluster as C

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_YAML = ROOT / "cluster.yaml"
SCRIPTS = ROOT / "scripts" / "cluster"
DIST_REMOTE = "/home/ray/dist"


# ---- fixtures and helpers -----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any AWS API call (botocore) raises; credentials, region config and IMDS are neutralised."""
    import botocore.client

    def refuse(self, operation_name, api_params):  # noqa: ANN001, ANN202
        raise AssertionError(f"AWS call attempted: {operation_name}")

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", refuse)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


def raw_config() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text(encoding="utf-8"))


@pytest.fixture
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """cluster.yaml as `ray up` sees it before the AWS calls: resolved (up.sh), then Ray's
    prepare_config + validate_config."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(C.resolved_config(raw_config(), tmp_path_factory.mktemp("resolve")))
    validate_config(config)
    return config


def head_type(config: dict) -> dict:
    return config["available_node_types"][config["head_node_type"]]


def worker_types(config: dict) -> dict[str, dict]:
    return {
        k: v for k, v in config["available_node_types"].items() if k != config["head_node_type"]
    }


def gpu_worker(config: dict) -> dict:
    gpus = [t for t in worker_types(config).values() if t["resources"].get("GPU", 0) >= 1]
    assert gpus, "no worker type declares a GPU in `resources`"
    return gpus[0]


def run_options(config: dict, role: str) -> list[str]:
    docker = config["docker"]
    return docker.get("run_options", []) + docker.get(f"{role}_run_options", [])


def container_env(config: dict, role: str) -> dict[str, str]:
    """The --env/-e variables of the Ray container of a head or worker node."""
    env: dict[str, str] = {}
    for option in run_options(config, role):
        tokens = shlex.split(option)
        for flag, value in zip(tokens, tokens[1:], strict=False):
            if flag in ("--env", "-e") and "=" in value:
                key, val = value.split("=", 1)
                env[key] = val
    return env


def docker_run_mlflow(config: dict) -> list[str]:
    """The `docker run ...` tokens of the MLflow server in head_setup_commands."""
    for command in config["head_setup_commands"]:
        for part in command.split(";"):
            tokens = shlex.split(part)
            if tokens[:2] == ["docker", "run"] and "mlflow" in tokens:
                return tokens
    raise AssertionError("no `docker run ... mlflow server` in head_setup_commands")


def split_docker_run(tokens: list[str]) -> tuple[list[str], str, list[str]]:
    """(docker options, image, command) of a `docker run` token list."""
    with_value = {
        "--name",
        "--restart",
        "--network",
        "--env",
        "-e",
        "--env-file",
        "--log-opt",
        "-v",
    }
    i = 2
    while tokens[i].startswith("-"):
        i += 2 if tokens[i] in with_value else 1
    return tokens[2:i], tokens[i], tokens[i + 1 :]


def option_values(tokens: list[str], flag: str) -> list[str]:
    return [b for a, b in zip(tokens, tokens[1:], strict=False) if a == flag]


def ray_wrapped(command: str) -> list[str]:
    """A setup/start command as Ray's command runner runs it: `_with_interactive` makes the shell
    string `bash --login -c -i 'source ~/.bashrc; ... && (command)'`, which `docker exec ... /bin/bash
    -c` (or the SSH login shell) then parses."""
    from ray.autoscaler._private.command_runner import _with_interactive

    return ["/bin/bash", "-c", " ".join(_with_interactive(command))]


def dist_scripts_used(config: dict) -> set[str]:
    text = json.dumps(config)
    return set(re.findall(re.escape(DIST_REMOTE) + r"/cluster/([\w.\-]+)", text))


def iam_policy(name: str) -> dict:
    return json.loads((SCRIPTS / "iam" / name).read_text(encoding="utf-8"))


def allowed_actions(policy: dict) -> set[str]:
    actions: set[str] = set()
    for st in policy["Statement"]:
        assert st["Effect"] == "Allow"
        acts = st["Action"]
        actions.update([acts] if isinstance(acts, str) else acts)
    return actions


# ---- Ray's schema and config preparation ---------------------------------------------------------


def test_ray_schema_and_prepare_config_accept_it(prepared: dict) -> None:
    import ray

    assert ray.__version__ == "2.60.0"
    assert prepared["provider"]["type"] == "aws"
    assert prepared["head_node_type"] in prepared["available_node_types"]
    # prepare_config merged the common setup into both roles, in order.
    for role in ("head", "worker"):
        common = prepared["setup_commands"]
        assert prepared[f"{role}_setup_commands"][: len(common)] == common


def test_rays_aws_bootstrap_keeps_our_profiles_groups_key_and_ami(prepared: dict) -> None:
    """The AWS bootstrap steps of `ray up` that would otherwise create a role, a world-open
    security group or a key pair, or substitute Ray's default AMI, leave this config alone (and, with
    these fields set, make no AWS call: the fixture would fail them)."""
    from ray.autoscaler._private.aws import config as aws_config

    config = copy.deepcopy(prepared)
    config["head_node"] = {}  # what bootstrap_aws starts with
    before = copy.deepcopy(config["available_node_types"])
    config = aws_config._configure_iam_role(config)
    config = aws_config._configure_key_pair(config)
    config = aws_config._configure_security_group(config)
    aws_config._check_ami(config)
    assert config["head_node"] == {}, "Ray would attach its default ray-autoscaler-v1 profile"
    assert config["available_node_types"] == before


# ---- the fields issue 11 asks for ----------------------------------------------------------------


def test_image_id_resolved_on_every_node_type(prepared: dict) -> None:
    from ray.autoscaler._private.aws.config import DEFAULT_AMI

    for name, node_type in raw_config()["available_node_types"].items():
        assert node_type["node_config"]["ImageId"] == "ami-unresolved", name  # never a real id
    for name, node_type in prepared["available_node_types"].items():
        ami = node_type["node_config"].get("ImageId", "")
        assert re.fullmatch(r"ami-[0-9a-f]{8,17}", ami), f"{name}: ImageId {ami!r}"
        assert ami not in DEFAULT_AMI.values(), f"{name}: Ray's Ubuntu 18.04 default DLAMI"
    amis = {t["node_config"]["ImageId"] for t in prepared["available_node_types"].values()}
    assert amis == {C.AMI}, "one host stack on every node: the id SSM gave"
    meta = prepared["metadata"]["avspot"]
    assert meta["ami_ssm_parameter"] == (
        "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"
    )
    resolved = meta["resolved"]
    assert (resolved["ami"], resolved["region"]) == (C.AMI, prepared["provider"]["region"])
    assert resolved["ami_name"] == C.AMI_NAME and resolved["ami_created"] == C.AMI_CREATED
    assert resolved["ssm_parameter"] == meta["ami_ssm_parameter"]
    assert resolved["resolved_at"].startswith("2026-12-01T12:00")


def test_head_and_workers_have_separate_instance_profiles(prepared: dict) -> None:
    head = head_type(prepared)["node_config"]["IamInstanceProfile"]
    workers = [t["node_config"]["IamInstanceProfile"] for t in worker_types(prepared).values()]
    assert workers and all(w != head for w in workers)
    # The head's policy passes exactly the workers' role (instance profile name == role name).
    head_policy = iam_policy("head-policy.json")
    pass_role = [s for s in head_policy["Statement"] if "iam:PassRole" in json.dumps(s["Action"])]
    assert len(pass_role) == 1
    roles = pass_role[0]["Resource"]
    roles = [roles] if isinstance(roles, str) else roles
    assert len(roles) == 1
    assert re.fullmatch(rf"arn:aws:iam::\d{{12}}:role/{workers[0]['Name']}", roles[0])


def test_iam_policies(prepared: dict) -> None:
    head = allowed_actions(iam_policy("head-policy.json"))
    worker = allowed_actions(iam_policy("worker-policy.json"))
    assert {"ec2:RunInstances", "ec2:TerminateInstances", "ec2:CreateTags", "iam:PassRole"} <= head
    assert {"ec2:DescribeInstances", "ssm:GetParameter", "s3:GetObject", "s3:PutObject"} <= head
    ecr_pull = {"ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                "ecr:BatchCheckLayerAvailability"}  # fmt: skip
    assert not [a for a in worker if not a.startswith("s3:") and a not in ecr_pull], (
        "workers get S3 rights and image pulls only"
    )
    assert ecr_pull <= head and ecr_pull <= worker
    # The repositories they may pull are the ones the images are named in (account, region, path).
    image = raw_config()["docker"]["worker_image"]
    account, region = re.match(r"(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com/", image).groups()
    path = image.split("/", 1)[1].rsplit("/", 1)[0]
    for name in ("head-policy.json", "worker-policy.json"):
        assert f"arn:aws:ecr:{region}:{account}:repository/{path}/*" in json.dumps(iam_policy(name))
    assert {"s3:GetObject", "s3:PutObject", "s3:ListBucket"} <= worker
    assert "*" not in head | worker and not any(a.endswith(":*") for a in head | worker)
    trust = iam_policy("ec2-trust-policy.json")
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    # The bucket the policies name is the one MLflow's artifacts go to.
    bucket = re.search(r"s3://([^/\s]+)/", " ".join(prepared["head_setup_commands"])).group(1)
    for name in ("head-policy.json", "worker-policy.json"):
        assert f"arn:aws:s3:::{bucket}" in json.dumps(iam_policy(name))
    # The SSM parameter the head may read is the one the MLflow container is told to read.
    param = prepared["metadata"]["avspot"]["mlflow_backend_store_parameter"]
    assert f"AVSPOT_MLFLOW_DB_PARAMETER={param}" in option_values(
        docker_run_mlflow(prepared), "--env"
    )
    assert param.startswith("/avspot/mlflow/")


def test_gpu_worker_type(prepared: dict) -> None:
    worker = gpu_worker(prepared)
    assert worker["node_config"]["InstanceType"].startswith(("g", "p"))
    assert worker["min_workers"] == 0 and worker["max_workers"] >= 1
    assert head_type(prepared)["resources"].get("GPU", 0) == 0
    assert "--gpus all" in run_options(prepared, "worker")
    assert "--gpus all" not in run_options(prepared, "head")


def test_docker_images_are_the_pushed_digests(prepared: dict) -> None:
    docker = prepared["docker"]
    assert "image" not in raw_config()["docker"], "one image per role, no shared default"
    assert docker["head_image"] == f"{C.REGISTRY}/avspot-head@sha256:{C.DIGESTS['head']}"
    assert docker["worker_image"] == f"{C.REGISTRY}/avspot-worker@sha256:{C.DIGESTS['worker']}"
    assert docker["pull_before_run"] is False, "digests never change: pulled once per node"
    assert sys.version_info[:2] == (3, 11), "the images are py311: build and test with 3.11"


def test_region_reaches_the_containers(prepared: dict) -> None:
    region = prepared["provider"]["region"]
    assert region == "eu-west-1"
    for role in ("head", "worker"):
        env = container_env(prepared, role)
        assert env.get("AWS_REGION") == region and env.get("AWS_DEFAULT_REGION") == region
    mlflow_env = option_values(docker_run_mlflow(prepared), "--env")
    assert f"AWS_REGION={region}" in mlflow_env and f"AWS_DEFAULT_REGION={region}" in mlflow_env
    zones = prepared["provider"]["availability_zone"].split(",")
    assert all(z.startswith(region) for z in zones)


def test_worker_node_cache_is_on_the_disk_the_host_mounted(prepared: dict) -> None:
    env = container_env(prepared, "worker")
    inside = env["AVSPOT_CACHE_DIR"]
    volumes = [shlex.split(o) for o in run_options(prepared, "worker") if o.startswith("-v ")]
    assert [f"/mnt/avspot-cache:{inside}"] in [v[1:] for v in volumes]
    init = [c for c in prepared["initialization_commands"] if "node_cache_disk.sh" in c]
    assert len(init) == 1 and init[0].endswith(" /mnt/avspot-cache")
    assert "AVSPOT_CACHE_DIR" not in container_env(prepared, "head")  # the head trains nothing


def test_file_mounts_ship_dist_and_secrets_never_the_checkout(prepared: dict) -> None:
    mounts = prepared["file_mounts"]
    for remote, local in mounts.items():
        resolved = (ROOT / os.path.expanduser(local)).resolve()
        assert resolved != ROOT, f"{remote}: the repository root"
        assert not (resolved / ".git").exists() and not (resolved / ".venv").exists()
        assert ".venv" not in Path(local).parts
        assert remote.startswith("/"), "absolute: the MLflow container uses the host copy's path"
    assert (ROOT / mounts[DIST_REMOTE]).resolve() == ROOT / "dist"
    secrets = [r for r, local in mounts.items() if "~/.avspot" in local]
    assert secrets == ["/home/ray/.avspot"]
    assert (
        not prepared["cluster_synced_files"] and prepared["file_mounts_sync_continuously"] is False
    )
    assert "**/__pycache__" in prepared["rsync_exclude"]


INSTALLERS = re.compile(
    r"\b(pip3?|uv pip|conda|mamba|apt-get|apt|yum|dnf) +install\b|docker +build\b"
)


def test_no_node_installs_anything_at_boot(prepared: dict) -> None:
    keys = ("initialization_commands", "setup_commands", "head_setup_commands",
            "worker_setup_commands", "head_start_ray_commands", "worker_start_ray_commands")  # fmt: skip
    for key in keys:
        for command in prepared[key]:
            assert not INSTALLERS.search(command), f"{key}: {command}"
    for node_type in prepared["available_node_types"].values():
        assert not INSTALLERS.search(json.dumps(node_type)), "no user data installs either"
    # What the boot does instead: check that the image is dist/'s build (the wheel is in the image).
    for role in ("head", "worker"):
        assert f"bash {DIST_REMOTE}/cluster/check_image.sh" in prepared[f"{role}_setup_commands"]


def test_every_script_the_config_runs_is_shipped_in_dist(prepared: dict) -> None:
    used = dist_scripts_used(prepared)
    assert {"node_env.sh", "check_gpu.sh", "wait_mlflow.sh", "check_image.sh",
            "registry_login.sh", "node_cache_disk.sh"} <= used  # fmt: skip
    text = (SCRIPTS / "build_dist.sh").read_text()
    shipped = set(re.search(r"for f in ([^;]+); do", text).group(1).split())
    assert used <= shipped and "mlflow_server.sh" in shipped
    for name in shipped:
        assert (SCRIPTS / name).is_file(), name


def test_mlflow_server_is_supervised_and_configured(prepared: dict) -> None:
    tokens = docker_run_mlflow(prepared)
    options, image, command = split_docker_run(tokens)
    assert option_values(options, "--restart") == ["unless-stopped"]
    assert option_values(options, "--network") == ["host"]
    assert image == f"{C.REGISTRY}/avspot-mlflow@sha256:{C.DIGESTS['mlflow']}"  # pushed, pinned
    assert not any("docker build" in c for c in prepared["head_setup_commands"])
    # Ray runs a setup command on the host when it starts with `docker` (DockerCommandRunner.run).
    assert all(c.startswith("docker") for c in prepared["head_setup_commands"] if "docker " in c)
    secrets_host = "/tmp/ray_tmp_mount/{}/home/ray/.avspot/mlflow.env".format(
        prepared["cluster_name"]
    )
    assert option_values(options, "--env-file") == [secrets_host]
    assert "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false" in option_values(options, "--env")

    assert command[:2] == ["mlflow", "server"]
    assert option_values(command, "--workers") == ["1"]
    assert "--serve-artifacts" in command
    (dest,) = option_values(command, "--artifacts-destination")
    assert dest.startswith("s3://") and dest.rstrip("/").count("/") >= 3
    host = option_values(command, "--host")
    assert host in (["0.0.0.0"], ["127.0.0.1"])
    if host == ["0.0.0.0"]:
        assert option_values(command, "--app-name") == ["basic-auth"], "0.0.0.0 without auth"
    # No store in the YAML: the URI (with its password) comes from SSM at container start.
    assert not option_values(command, "--backend-store-uri")
    assert "sqlite" not in " ".join(tokens) and "file:" not in " ".join(tokens)
    # The Ray head waits for it before `ray start`.
    waits = [c for c in prepared["head_setup_commands"] if "wait_mlflow.sh" in c]
    assert waits and "http://127.0.0.1:5000" in waits[0]


def test_ray_token_auth_is_on(prepared: dict) -> None:
    for role in ("head", "worker"):
        env = container_env(prepared, role)
        assert env.get("RAY_AUTH_MODE") == "token"
        token = env["RAY_AUTH_TOKEN_PATH"]
        assert any(token.startswith(r.rstrip("/") + "/") for r in prepared["file_mounts"]), token
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = [c for c in prepared[key] if "ray start" in c]
        assert len(start) == 1 and start[0].startswith('test -s "$RAY_AUTH_TOKEN_PATH" &&')
    (head_start,) = [c for c in prepared["head_start_ray_commands"] if "ray start" in c]
    assert "--dashboard-host=127.0.0.1" in head_start and "0.0.0.0" not in head_start


def test_ssh_open_to_one_cidr_only(prepared: dict) -> None:
    from ray.autoscaler._private.aws.config import _create_default_ssh_inbound_rules

    # Ray's own group opens SSH to the world, so every node type names a group of ours.
    assert _create_default_ssh_inbound_rules()[0]["IpRanges"] == [{"CidrIp": "0.0.0.0/0"}]
    groups = {
        json.dumps(t["node_config"].get("SecurityGroupIds"))
        for t in prepared["available_node_types"].values()
    }
    assert len(groups) == 1 and json.loads(groups.pop())[0].startswith("sg-")
    assert "security_group" not in prepared["provider"]
    cidr = ipaddress.ip_network(prepared["metadata"]["avspot"]["ssh_ingress_cidr"])
    assert cidr.prefixlen >= 8, f"SSH open to {cidr}"
    out = subprocess.run(
        ["bash", str(SCRIPTS / "create_security_group.sh"), "--dry-run"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    (rule,) = json.loads(out)
    assert (rule["FromPort"], rule["ToPort"], rule["IpProtocol"]) == (22, 22, "tcp")
    assert [r["CidrIp"] for r in rule["IpRanges"]] == [str(cidr)]


def test_every_block_says_why(prepared: dict) -> None:
    lines = CLUSTER_YAML.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[a-z_]+:", line):
            previous = next((p for p in reversed(lines[:i]) if p.strip()), "")
            assert "#" in line or previous.startswith("#"), f"no comment for {line!r}"
    # Placeholders stay marked after they are filled in (docs/cluster.md, "Placeholders").
    assert CLUSTER_YAML.read_text(encoding="utf-8").count("PLACEHOLDER") >= 6


# ---- the node-side scripts, run for real ---------------------------------------------------------


def make_node(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A fake node: HOME with the mounted secrets and dist/BUILD_ID, as node_env.sh expects."""
    home = tmp_path / "home"
    (home / ".avspot").mkdir(parents=True)
    (home / "dist").mkdir()
    subprocess.run(
        ["bash", str(SCRIPTS / "make_secrets.sh"), str(home / ".avspot")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    (home / "dist" / "BUILD_ID").write_text("0123456789abcdef\n")
    env = {
        "HOME": str(home),
        "PATH": os.environ["PATH"],
        "LANG": "C.UTF-8",
        "TERM": "dumb",
    }
    return home, env


def mlflow_creds(home: Path) -> dict[str, str]:
    lines = (home / ".avspot" / "mlflow.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def test_make_secrets_is_private_and_idempotent(tmp_path: Path) -> None:
    home, _ = make_node(tmp_path)
    secrets = home / ".avspot"
    token = (secrets / "ray_auth_token").read_text()
    creds = mlflow_creds(home)
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    assert creds["MLFLOW_TRACKING_USERNAME"] and len(creds["MLFLOW_TRACKING_PASSWORD"]) >= 12
    assert creds["MLFLOW_FLASK_SERVER_SECRET_KEY"] != creds["MLFLOW_TRACKING_PASSWORD"]
    assert oct(secrets.stat().st_mode & 0o777) == "0o700"
    assert oct((secrets / "mlflow.env").stat().st_mode & 0o777) == "0o600"
    subprocess.run(
        ["bash", str(SCRIPTS / "make_secrets.sh"), str(secrets)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert (secrets / "ray_auth_token").read_text() == token and mlflow_creds(home) == creds


@pytest.mark.parametrize("role", ["worker", "head"])
def test_setup_puts_tracking_uri_in_every_shell_ray_opens(
    tmp_path: Path, prepared: dict, role: str
) -> None:
    """node_env.sh (a setup command on every node) makes ~/.bashrc export the tracking URI and the
    credentials: Ray's wrapped commands (`ray start`, hence the raylet, its workers and job drivers)
    and the interactive `ray attach` shell see them."""
    assert f"bash {DIST_REMOTE}/cluster/node_env.sh" in prepared[f"{role}_setup_commands"]
    home, env = make_node(tmp_path)
    env["AVSPOT_DIST_DIR"] = str(home / "dist")
    if role == "worker":
        env["RAY_HEAD_IP"] = "10.0.1.23"  # exported by the autoscaler into workers' setup commands
        expected = "http://10.0.1.23:5000"
    else:
        env["AVSPOT_HEAD_IP"] = "10.0.1.5"  # on a real head: Ray's get_node_ip_address()
        expected = "http://10.0.1.5:5000"
    for _ in range(2):  # a second `ray up` must not add a second hook
        subprocess.run(
            ray_wrapped(f"bash {SCRIPTS / 'node_env.sh'}"),
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert (home / ".bashrc").read_text().count("avspot-env") == 2  # one line, two mentions
    assert oct((home / ".avspot-env").stat().st_mode & 0o777) == "0o600"

    clean = {k: v for k, v in env.items() if not k.startswith(("RAY_HEAD", "AVSPOT_"))}
    script = tmp_path / "env_probe.py"
    keys = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "AVSPOT_BUILD_ID")
    script.write_text(f"import os\nprint(*(os.environ.get(k) for k in {keys!r}))\n")
    probe = f"{sys.executable} {script}"
    creds = mlflow_creds(home)
    want = f"{expected} {creds['MLFLOW_TRACKING_USERNAME']} 0123456789abcdef"
    for argv in (ray_wrapped(probe), ["bash", "-i", "-c", probe]):
        out = subprocess.run(argv, env=clean, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().splitlines()[-1] == want, argv


@pytest.mark.slow
def test_ray_workers_inherit_it_under_token_auth(tmp_path: Path) -> None:
    """What `ray start` does on a node, locally: a Ray runtime started from the shell Ray's wrapper
    opens, with token auth on, runs a task whose worker process sees MLFLOW_TRACKING_URI."""
    home, env = make_node(tmp_path)
    env.update(AVSPOT_DIST_DIR=str(home / "dist"), AVSPOT_HEAD_IP="127.0.0.1")
    subprocess.run(
        ray_wrapped(f"bash {SCRIPTS / 'node_env.sh'}"),
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    script = tmp_path / "probe.py"
    script.write_text(
        "import os, ray\n"
        "ray.init(num_cpus=1, include_dashboard=False, _node_ip_address='127.0.0.1',\n"
        "         log_to_driver=False, configure_logging=False)\n"
        "@ray.remote\n"
        "def probe():\n"
        "    return os.getpid(), os.environ.get('MLFLOW_TRACKING_URI'), os.environ.get('RAY_AUTH_MODE')\n"
        "pid, uri, mode = ray.get(probe.remote())\n"
        "assert pid != os.getpid()\n"
        "print('PROBE', uri, mode)\n"
        "ray.shutdown()\n"
    )
    run_env = {
        "HOME": str(home),
        "PATH": os.environ["PATH"],
        "TERM": "dumb",
        "RAY_AUTH_MODE": "token",  # as the container's --env
        "RAY_AUTH_TOKEN": (home / ".avspot" / "ray_auth_token").read_text(),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    out = subprocess.run(
        ray_wrapped(f"{sys.executable} {script}"),
        env=run_env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "PROBE http://127.0.0.1:5000 token" in out.stdout


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    path = tmp_path / "bin"
    path.mkdir()
    return path


def write_exe(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def run_mlflow_entrypoint(fake_bin: Path, tmp_path: Path, uri: str, *args: str):
    write_exe(
        fake_bin / "mlflow",
        "#!/usr/bin/env bash\n"
        'echo "ARGS $*"\n'
        'echo "STORE $MLFLOW_BACKEND_STORE_URI"\n'
        'echo "ADMIN $MLFLOW_AUTH_ADMIN_USERNAME $MLFLOW_AUTH_ADMIN_PASSWORD"\n'
        'echo "JOBS $MLFLOW_SERVER_ENABLE_JOB_EXECUTION"\n'
        'echo "LEFT ${MLFLOW_TRACKING_PASSWORD:-none}"\n'
        'cp "$MLFLOW_AUTH_CONFIG_PATH" "$INI_COPY"\n',
    )
    env = {
        "PATH": f"{fake_bin}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "MLFLOW_TRACKING_USERNAME": "avspot",
        "MLFLOW_TRACKING_PASSWORD": "p" * 64,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "k" * 64,
        "AVSPOT_MLFLOW_BACKEND_STORE_URI": uri,
        "INI_COPY": str(tmp_path / "ini"),
    }
    return subprocess.run(
        ["bash", str(SCRIPTS / "mlflow_server.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_mlflow_entrypoint_adds_store_and_auth(
    fake_bin: Path, tmp_path: Path, prepared: dict
) -> None:
    _, _, command = split_docker_run(docker_run_mlflow(prepared))
    uri = "postgresql://mlflow:p%40ss@avspot-mlflow.abc.eu-west-1.rds.amazonaws.com:5432/mlflow"
    out = run_mlflow_entrypoint(fake_bin, tmp_path, uri, *command)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert lines["ARGS"] == " ".join(command[1:])  # exactly cluster.yaml's command
    assert lines["STORE"] == uri and uri not in lines["ARGS"]
    assert lines["ADMIN"] == f"avspot {'p' * 64}"
    assert lines["JOBS"] == "false" and lines["LEFT"] == "none"
    ini = configparser.ConfigParser()
    ini.read(tmp_path / "ini")
    assert ini["mlflow"]["database_uri"] == uri  # '%' survived configparser
    assert ini["mlflow"]["admin_username"] == "avspot"
    assert uri not in out.stderr


@pytest.mark.parametrize(
    ("uri", "args"),
    [
        ("sqlite:////home/ray/mlflow.db", ["mlflow", "server", "--app-name", "basic-auth"]),
        ("file:///tmp/mlruns", ["mlflow", "server"]),
        ("postgresql://u:p@db/mlflow", ["mlflow", "server", "--host", "0.0.0.0", "--workers", "1"]),
    ],
)
def test_mlflow_entrypoint_refuses(
    fake_bin: Path, tmp_path: Path, uri: str, args: list[str]
) -> None:
    out = run_mlflow_entrypoint(fake_bin, tmp_path, uri, *args)
    assert out.returncode == 2 and "ARGS" not in out.stdout
    assert "refusing" in out.stderr


def test_wait_mlflow(tmp_path: Path) -> None:
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args) -> None:  # noqa: ANN002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        ok = subprocess.run(
            ["bash", str(SCRIPTS / "wait_mlflow.sh"), url, "10"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ok.returncode == 0, ok.stderr
    finally:
        server.shutdown()
        server.server_close()
    down = subprocess.run(
        ["bash", str(SCRIPTS / "wait_mlflow.sh"), url, "3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert down.returncode != 0 and "docker logs" in down.stderr


@pytest.mark.parametrize(
    ("smi", "message"),
    [
        ("echo 'NVIDIA A10G, 570.172.08'", "< 580"),
        ("echo 'NVIDIA-SMI has failed' >&2; exit 9", "nvidia-smi failed"),
    ],
)
def test_check_gpu_fails_early(fake_bin: Path, smi: str, message: str) -> None:
    write_exe(fake_bin / "nvidia-smi", f"#!/usr/bin/env bash\n{smi}\n")
    env = {"PATH": f"{fake_bin}:{os.environ['PATH']}", "HOME": str(fake_bin)}
    out = subprocess.run(
        ["bash", str(SCRIPTS / "check_gpu.sh")], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 1 and message in out.stderr


@pytest.mark.parametrize(
    ("disks", "mounted_at", "expect"),
    [
        ("/dev/nvme0n1 Amazon Elastic Block Store\n/dev/nvme1n1 Amazon EC2 NVMe Instance Storage",
         "", ["mkfs.ext4 -q -F -m 0 -E nodiscard /dev/nvme1n1",
              "mount -o noatime /dev/nvme1n1 {mnt}"]),
        ("/dev/nvme1n1 Amazon EC2 NVMe Instance Storage", "/opt/dlami/nvme",
         ["mount --bind /opt/dlami/nvme {mnt}"]),
        ("/dev/nvme0n1 Amazon Elastic Block Store", "", []),
    ],
    ids=["formats-the-instance-store", "binds-the-amis-mount", "root-volume-without-one"],
)  # fmt: skip
def test_node_cache_disk_finds_the_instance_store(
    fake_bin: Path, tmp_path: Path, disks: str, mounted_at: str, expect: list[str]
) -> None:
    log, mnt = tmp_path / "calls", tmp_path / "mnt" / "avspot-cache"
    write_exe(fake_bin / "lsblk", f"#!/usr/bin/env bash\nprintf '{disks}\\n'\n")
    write_exe(
        fake_bin / "findmnt",
        f"#!/usr/bin/env bash\n[[ -n '{mounted_at}' ]] && echo '{mounted_at}'\nexit 0\n",
    )
    write_exe(fake_bin / "mountpoint", "#!/usr/bin/env bash\nexit 1\n")
    for tool in ("mkfs.ext4", "mount"):
        write_exe(fake_bin / tool, f'#!/usr/bin/env bash\necho "{tool} $*" >> {log}\n')
    env = {"PATH": f"{fake_bin}:{os.environ['PATH']}", "SUDO": "", "OWNER": f"{os.getuid()}"}
    out = subprocess.run(
        ["bash", str(SCRIPTS / "node_cache_disk.sh"), str(mnt)],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    calls = log.read_text().splitlines() if log.exists() else []
    assert calls == [c.format(mnt=mnt) for c in expect]
    assert mnt.is_dir() and ("root volume" in out.stdout) == (not expect)


def test_shell_scripts_are_strict_and_parse() -> None:
    scripts = sorted(SCRIPTS.glob("*.sh"))
    assert {p.name for p in scripts} >= {"build_dist.sh", "node_env.sh", "mlflow_server.sh"}
    for path in scripts:
        lines = path.read_text().splitlines()
        assert lines[0] == "#!/usr/bin/env bash", path.name
        assert lines[1].startswith(f"# {path.name}"), f"{path.name}: header comment"
        assert "set -euo pipefail" in lines, path.name
        subprocess.run(["bash", "-n", str(path)], check=True, timeout=30)


# ---- the dist build ------------------------------------------------------------------------------


@pytest.mark.slow
def test_build_dist_makes_wheel_constraints_and_checksums(tmp_path: Path, prepared: dict) -> None:
    import ray

    out = tmp_path / "dist"
    done = subprocess.run(
        ["bash", str(SCRIPTS / "build_dist.sh"), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    (wheel,) = out.glob("avspot-*-py3-none-any.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for package in ("datasets", "avmodels", "search"):
        assert any(re.fullmatch(rf"avspot/{package}/\S+\.py", n) for n in names), package
    if (ROOT / "avspot" / "__init__.py").exists():
        assert "avspot/__init__.py" in names
    assert any(n.startswith("avspot/") and n.count("/") == 1 for n in names)
    assert not any(
        n.startswith(("tests/", ".venv/")) or n.endswith((".db", ".parquet")) for n in names
    )
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert re.search(r"^avspot = ", zipfile.ZipFile(wheel).read(entry_points).decode(), re.M)

    pins = {}
    for line in (out / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    assert "avspot" not in pins
    assert pins["ray"] == ray.__version__
    assert pins["mlflow"] and pins["pyarrow"] and pins["optuna"]
    assert "+" not in pins["torch"], "local label dropped: the nodes get PyPI's CUDA build"
    assert pins["psycopg2-binary"] and pins["flask-wtf"], "MLflow server image extras"

    sums = (out / "SHA256SUMS").read_text().splitlines()
    listed = {}
    for line in sums:
        digest, name = line.split("  ", 1)
        listed[name] = digest
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest, name
    assert {wheel.name, "constraints.txt", "BUILD_ID"} <= set(listed)
    for name in dist_scripts_used(prepared) | {"mlflow_server.sh"}:
        assert f"cluster/{name}" in listed, name
    assert re.fullmatch(r"[0-9a-f]{16}\n", (out / "BUILD_ID").read_text())
