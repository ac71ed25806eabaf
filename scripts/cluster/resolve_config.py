"""resolve_config.py CONFIG OUT: the config `ray up` gets, from the committed cluster.yaml (which Ray
refuses on purpose) with what was never in it resolved: scripts/cluster/up.sh runs it.

- The AMI: read now, for the config's region, from AWS's public SSM parameter named in
  metadata.avspot.ami_ssm_parameter (the latest Deep Learning Base OSS Nvidia Driver GPU AMI, Ubuntu
  22.04), then checked with ec2 describe-images (available, x86_64, the expected name); written into
  every node type's ImageId.
- The node images: the digests build_images.sh pushed (dist/IMAGES), for the same build as dist/
  (dist/BUILD_ID): docker.head_image, docker.worker_image and the MLflow server's image.
- metadata.avspot.resolved: AMI id, name and creation date, region, parameter, when, images, build.
- The refusal key (UNRESOLVED_KEY) is removed; any other "unresolved" left is an error.
Exit 2 with one line naming what is wrong; OUT is written only when everything resolved.
Needs the AWS CLI (AWS, default aws) with credentials allowed ssm:GetParameter on the public
parameter and ec2:DescribeImages.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

UNRESOLVED_KEY = "UNRESOLVED_run_scripts_cluster_up_sh_instead"
AMI_PLACEHOLDER = "ami-unresolved"
IMAGE_PLACEHOLDER = re.compile(r"[^\s'\"]*/avspot-(head|worker|mlflow):unresolved")
AMI_ID = re.compile(r"ami-[0-9a-f]{8,17}")
AMI_NAME = "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) "
ROLES = ("head", "worker", "mlflow")


class Refused(Exception):
    """Something the config needs could not be resolved."""


def aws(*args: str) -> str:
    cmd = [os.environ.get("AWS", "aws"), *args]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Refused(f"cannot run {' '.join(cmd[:3])}: {exc}") from None
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise Refused(f"`aws {' '.join(args[:2])}` failed: {last}")
    return out.stdout.strip()


def resolve_ami(region: str, parameter: str) -> dict[str, str]:
    ami = aws("ssm", "get-parameter", "--region", region, "--name", parameter,
              "--query", "Parameter.Value", "--output", "text")  # fmt: skip
    if not AMI_ID.fullmatch(ami):
        raise Refused(f"SSM parameter {parameter} in {region} gave {ami!r}, not an AMI id")
    facts = aws("ec2", "describe-images", "--region", region, "--image-ids", ami, "--output", "json",
                "--query", "Images[0].{name: Name, created: CreationDate, arch: Architecture, "
                "state: State}")  # fmt: skip
    try:
        image = json.loads(facts)
    except json.JSONDecodeError:
        raise Refused(f"ec2 describe-images {ami}: unreadable answer {facts[:80]!r}") from None
    if not isinstance(image, dict):
        raise Refused(f"ec2 describe-images: {ami} does not exist in {region}")
    name = str(image.get("name") or "")
    if image.get("state") != "available" or image.get("arch") != "x86_64":
        raise Refused(f"{ami} in {region} is {image.get('state')}/{image.get('arch')}, "
                      "not available/x86_64")  # fmt: skip
    if not name.startswith(AMI_NAME):
        raise Refused(f"{ami} in {region} is {name!r}, not a '{AMI_NAME.strip()}' release")
    return {"ami": ami, "ami_name": name, "ami_created": str(image.get("created", "")),
            "region": region, "ssm_parameter": parameter}  # fmt: skip


def read_images(dist: Path) -> dict[str, str]:
    images_file, build_file = dist / "IMAGES", dist / "BUILD_ID"
    if not images_file.is_file():
        raise Refused(f"{images_file} missing: run scripts/cluster/build_images.sh REGISTRY first")
    values = dict(
        line.split("=", 1)
        for line in images_file.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    build = build_file.read_text().strip() if build_file.is_file() else ""
    if values.get("AVSPOT_BUILD_ID") != build:
        raise Refused(f"{images_file} is build {values.get('AVSPOT_BUILD_ID')!r}, dist/ is build "
                      f"{build!r}: run scripts/cluster/build_images.sh REGISTRY again")  # fmt: skip
    out = {"build_id": build, "registry": values.get("AVSPOT_REGISTRY", "")}
    for role in ROLES:
        ref = values.get(f"AVSPOT_IMAGE_{role.upper()}", "")
        if not re.fullmatch(rf"\S+/avspot-{role}@sha256:[0-9a-f]{{64}}", ref):
            raise Refused(f"{images_file}: AVSPOT_IMAGE_{role.upper()}={ref!r} is not a digest")
        out[role] = ref
    return out


def resolve(config: dict[str, Any], dist: Path, now: datetime.datetime) -> dict[str, Any]:
    """A resolved copy of ``config`` (the committed cluster.yaml, parsed)."""
    if UNRESOLVED_KEY not in config:
        raise Refused(f"the config has no {UNRESOLVED_KEY}: it was resolved already, or is not "
                      "avspot's cluster.yaml")  # fmt: skip
    config = json.loads(json.dumps(config))  # a deep copy without YAML anchors
    config.pop(UNRESOLVED_KEY)
    meta = config["metadata"]["avspot"]
    ami = resolve_ami(config["provider"]["region"], meta["ami_ssm_parameter"])
    images = read_images(dist)
    for node_type in config["available_node_types"].values():
        if node_type["node_config"].get("ImageId") != AMI_PLACEHOLDER:
            raise Refused("every node type's ImageId must be the placeholder "
                          f"{AMI_PLACEHOLDER!r}: up.sh resolves it")  # fmt: skip
        node_type["node_config"]["ImageId"] = ami["ami"]
    text = IMAGE_PLACEHOLDER.sub(lambda m: images[m.group(1)], json.dumps(config))
    if "unresolved" in text.lower():
        left = re.findall(r'"[^"]*unresolved[^"]*"', text, re.IGNORECASE)[:3]
        raise Refused(f"still unresolved after substitution: {', '.join(left)}")
    config = json.loads(text)
    meta = config["metadata"]["avspot"]
    meta["resolved"] = {**ami, "resolved_at": now.isoformat(timespec="seconds"),
                        "build_id": images["build_id"], "registry": images["registry"],
                        "images": {r: images[r] for r in ROLES}}  # fmt: skip
    return config


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: resolve_config.py CONFIG OUT", file=sys.stderr)
        return 2
    src, out = Path(argv[0]), Path(argv[1])
    dist = Path(os.environ.get("AVSPOT_DIST_DIR") or Path(__file__).resolve().parents[2] / "dist")
    try:
        config = yaml.safe_load(src.read_text(encoding="utf-8"))
        resolved = resolve(config, dist, datetime.datetime.now(datetime.UTC))
    except Refused as exc:
        print(f"resolve_config.py: refusing {src}: {exc}", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    header = (f"# Generated from {src.name} by scripts/cluster/resolve_config.py (up.sh); do not edit.\n"
              "# Use it for ray up/down/attach/exec/dashboard; regenerate with up.sh.\n")  # fmt: skip
    tmp.write_text(header + yaml.safe_dump(resolved, sort_keys=False), encoding="utf-8")
    os.replace(tmp, out)
    r = resolved["metadata"]["avspot"]["resolved"]
    print(f"resolve_config.py: {out}: {r['region']} {r['ami']} ({r['ami_name']}, created "
          f"{r['ami_created']}), build {r['build_id']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
