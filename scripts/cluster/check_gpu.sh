#!/usr/bin/env bash
# check_gpu.sh: fail a GPU worker's setup (cluster.yaml worker_setup_commands), with one line that names
# the fix, when the pinned torch cannot use the GPU. Runs in the Ray container after the wheel is installed.
#
# The torch 2.13.0 wheels on PyPI are built for CUDA 13.0, which needs an NVIDIA driver >= 580 on the
# host: an older AMI boots, joins the cluster and only fails in the first trial, on every worker.
# AVSPOT_MIN_DRIVER_MAJOR overrides the minimum driver branch.
set -euo pipefail

# The image's interpreter (python); python3 where only that exists.
py=$(command -v python || command -v python3)

min_major=${AVSPOT_MIN_DRIVER_MAJOR:-580}
if ! out=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1); then
  echo "check_gpu.sh: nvidia-smi failed in the container: $out" >&2
  echo "check_gpu.sh: the worker needs a GPU instance, the GPU AMI and docker's --gpus all (cluster.yaml)" >&2
  exit 1
fi
driver=$(head -n 1 <<<"$out" | awk -F', *' '{print $NF}')
major=${driver%%.*}
if [[ ! $major =~ ^[0-9]+$ ]] || ((major < min_major)); then
  echo "check_gpu.sh: NVIDIA driver '$driver' < $min_major: torch's CUDA 13 wheels cannot run;" \
    "scripts/cluster/up.sh resolves the latest DLAMI for the region: run it again" >&2
  exit 1
fi
"$py" - <<'PY'
import sys

import torch

if not torch.cuda.is_available():
    sys.exit(f"check_gpu.sh: torch {torch.__version__} (CUDA {torch.version.cuda}) sees no usable GPU")
print(
    f"check_gpu.sh: torch {torch.__version__}, CUDA {torch.version.cuda}, "
    f"{torch.cuda.get_device_name(0)}"
)
PY
echo "check_gpu.sh: driver $driver"
