#!/usr/bin/env bash
# pin_ami.sh [--write] [CLUSTER_YAML]: print the current "Deep Learning Base OSS Nvidia Driver GPU AMI
# (Ubuntu 22.04)" id and name for the cluster's region (AWS's public SSM parameter named in
# metadata.avspot.ami_ssm_parameter), and with --write put it in cluster.yaml's ImageId (the anchored
# line `ImageId: &ami ami-...`, shared by every node type). Needs the AWS CLI and credentials.
# Pinning (rather than resolving at `ray up`) keeps every node of a cluster, and every later worker,
# on the same driver and docker; refresh deliberately, then run the cluster's checks again.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
write=no
if [[ ${1:-} == --write ]]; then
  write=yes
  shift
fi
config=${1:-$root/cluster.yaml}
python=${PYTHON:-$root/.venv/bin/python}

read -r region param < <("$python" - "$config" <<'PY'
import sys

import yaml

c = yaml.safe_load(open(sys.argv[1], encoding="utf-8"))
print(c["provider"]["region"], c["metadata"]["avspot"]["ami_ssm_parameter"])
PY
)
ami=$(aws ssm get-parameter --region "$region" --name "$param" --query Parameter.Value --output text)
name=$(aws ec2 describe-images --region "$region" --image-ids "$ami" --query 'Images[0].Name' --output text)
echo "$region $ami $name"
if [[ $write == yes ]]; then
  sed -i.bak -E "s/^( *ImageId: &ami )ami-[0-9a-f]+/\1$ami/" "$config"
  grep -q "ImageId: &ami $ami" "$config" || { echo "pin_ami.sh: could not update $config" >&2; exit 1; }
  rm -f "$config.bak"
  echo "pin_ami.sh: $config now pins $ami"
fi
