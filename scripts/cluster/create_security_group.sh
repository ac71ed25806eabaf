#!/usr/bin/env bash
# create_security_group.sh [--dry-run] [CLUSTER_YAML]: create the cluster's security group in the
# default VPC of the cluster's region and print its id, to put in cluster.yaml (SecurityGroupIds).
# Inbound rules:
#   - all traffic from the group itself: Ray (GCS 6379, object manager 8076, raylet and worker ports),
#     the head's MLflow server (5000) and the autoscaler's SSH to the workers;
#   - SSH (22/tcp) from metadata.avspot.ssh_ingress_cidr in cluster.yaml only (ray up/attach/exec and
#     the dashboard and MLflow tunnels all go through SSH). Nothing else from outside.
# Ray's own group (used when SecurityGroupIds is absent) always opens SSH to 0.0.0.0/0; this one does not.
# --dry-run prints the SSH rule as JSON and calls nothing. Needs the AWS CLI and credentials otherwise.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dry_run=no
if [[ ${1:-} == --dry-run ]]; then
  dry_run=yes
  shift
fi
config=${1:-$root/cluster.yaml}
python=${PYTHON:-$root/.venv/bin/python}

read -r region cidr name < <("$python" - "$config" <<'PY'
import ipaddress
import sys

import yaml

c = yaml.safe_load(open(sys.argv[1], encoding="utf-8"))
cidr = str(ipaddress.ip_network(c["metadata"]["avspot"]["ssh_ingress_cidr"], strict=True))
if ipaddress.ip_network(cidr).prefixlen == 0:
    sys.exit("create_security_group.sh: ssh_ingress_cidr must not be 0.0.0.0/0")
print(c["provider"]["region"], cidr, f"{c['cluster_name']}-ray-nodes")
PY
)
ssh_rule="[{\"IpProtocol\":\"tcp\",\"FromPort\":22,\"ToPort\":22,\"IpRanges\":[{\"CidrIp\":\"$cidr\",\"Description\":\"ray up/attach/exec over SSH\"}]}]"
if [[ $dry_run == yes ]]; then
  printf '%s\n' "$ssh_rule"
  exit 0
fi

vpc=$(aws ec2 describe-vpcs --region "$region" --filters Name=isDefault,Values=true \
  --query 'Vpcs[0].VpcId' --output text)
[[ $vpc == vpc-* ]] || { echo "create_security_group.sh: no default VPC in $region" >&2; exit 1; }
sg=$(aws ec2 create-security-group --region "$region" --vpc-id "$vpc" --group-name "$name" \
  --description "avspot Ray cluster: intra-cluster traffic, SSH from one CIDR" \
  --tag-specifications "ResourceType=security-group,Tags=[{Key=project,Value=avspot}]" \
  --query GroupId --output text)
aws ec2 authorize-security-group-ingress --region "$region" --group-id "$sg" \
  --ip-permissions "[{\"IpProtocol\":\"-1\",\"UserIdGroupPairs\":[{\"GroupId\":\"$sg\",\"Description\":\"cluster nodes\"}]}]" >/dev/null
aws ec2 authorize-security-group-ingress --region "$region" --group-id "$sg" \
  --ip-permissions "$ssh_rule" >/dev/null
echo "$sg"
