#!/usr/bin/env bash
# check_image.sh: fail a node's setup (cluster.yaml setup_commands), with one line that names the fix,
# when the container does not run the build that dist/ describes: the image carries the BUILD_ID of the
# dist/ it was built from (build_images.sh), and `ray up` synced the current dist/ to the node. A stale
# image would run other code than the wheel the driver was built with. Installs nothing.
# Overrides, for tests: AVSPOT_IMAGE_BUILD_FILE (default /home/ray/avspot-build/BUILD_ID),
# AVSPOT_DIST_DIR (default ~/dist).
set -euo pipefail

baked=${AVSPOT_IMAGE_BUILD_FILE:-/home/ray/avspot-build/BUILD_ID}
dist=${AVSPOT_DIST_DIR:-$HOME/dist}
want=$(tr -d '[:space:]' <"$dist/BUILD_ID" 2>/dev/null || true)
have=$(tr -d '[:space:]' <"$baked" 2>/dev/null || true)
if [[ -z $have ]]; then
  echo "check_image.sh: this container has no $baked: not an avspot image (scripts/cluster/build_images.sh)" >&2
  exit 1
fi
if [[ $have != "$want" ]]; then
  echo "check_image.sh: the image is build '$have', dist/ is build '${want:-none}':" \
    "run scripts/cluster/build_images.sh REGISTRY, then scripts/cluster/up.sh" >&2
  exit 1
fi
echo "check_image.sh: image and dist/ are build $have"
