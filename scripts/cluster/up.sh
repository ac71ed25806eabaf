#!/usr/bin/env bash
# up.sh [--dry-run] [RAY_UP_ARGS...]: `ray up` with what cluster.yaml deliberately leaves unresolved.
# The committed cluster.yaml carries a key Ray's schema refuses and ImageId: ami-unresolved, so it can
# never reach EC2 as it is. This script resolves them (scripts/cluster/resolve_config.py): the latest
# Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) for the config's region, read from AWS's
# public SSM parameter and checked with ec2 describe-images, and the node images' digests from
# dist/IMAGES (build_images.sh); it records id, region and date under metadata.avspot.resolved in
# build/cluster/cluster.resolved.yaml and runs `ray up` on that file (the head's autoscaler launches
# the workers from the same file). --dry-run resolves and prints the path without `ray up`.
# Then use the resolved file for the rest: ray attach|exec|dashboard|down build/cluster/cluster.resolved.yaml
# CONFIG (default cluster.yaml), OUT (default build/cluster/cluster.resolved.yaml), PYTHON and RAY
# (default .venv/bin/python, .venv/bin/ray) override; AWS names the AWS CLI.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
ray=${RAY:-$root/.venv/bin/ray}
config=${CONFIG:-$root/cluster.yaml}
out=${OUT:-$root/build/cluster/cluster.resolved.yaml}
dry_run=no
if [[ ${1:-} == --dry-run ]]; then
  dry_run=yes
  shift
fi
[[ -x $python ]] || { echo "up.sh: no interpreter at $python (make install, or PYTHON=...)" >&2; exit 1; }

rm -f "$out"
"$python" "$root/scripts/cluster/resolve_config.py" "$config" "$out"
[[ -s $out ]] || { echo "up.sh: $out was not written" >&2; exit 1; }
if [[ $dry_run == yes ]]; then
  echo "$out"
  exit 0
fi
cd "$root"   # file_mounts (./dist) are relative to the repository root
exec "$ray" up "$out" "$@"
