#!/usr/bin/env bash
# registry_login.sh [IMAGES_FILE]: log the host's docker in to the registry the node images come from, so
# that Ray can pull them. Runs on the host of every node (cluster.yaml initialization_commands, before
# Ray starts the container), from the copy of dist/ that `ray up` synced there. For an ECR registry it
# uses the node's instance profile (ecr:GetAuthorizationToken, and ecr:BatchGetImage etc. on the
# avspot-* repositories: scripts/cluster/iam/*-policy.json); any other registry is left to docker's
# own credentials. IMAGES_FILE defaults to the synced dist/IMAGES of build_images.sh.
set -euo pipefail

images=${1:-/tmp/ray_tmp_mount/avspot/home/ray/dist/IMAGES}
aws=${AWS:-aws}
docker=${DOCKER:-docker}
[[ -s $images ]] || { echo "registry_login.sh: $images missing: run scripts/cluster/build_images.sh, then scripts/cluster/up.sh" >&2; exit 1; }
registry=$(sed -n 's/^AVSPOT_REGISTRY=//p' "$images" | tail -n 1)
host=${registry%%/*}
if [[ $host =~ ^([0-9]{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com$ ]]; then
  "$aws" ecr get-login-password --region "${BASH_REMATCH[2]}" |
    "$docker" login --username AWS --password-stdin "$host" >/dev/null
  echo "registry_login.sh: docker logged in to $host"
else
  echo "registry_login.sh: $host is not ECR; using docker's own credentials"
fi
