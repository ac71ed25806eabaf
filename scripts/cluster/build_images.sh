#!/usr/bin/env bash
# build_images.sh REGISTRY [TAG]: build the cluster's three node images from dist/ (build_dist.sh runs
# first) and push them to REGISTRY, the registry the cluster pulls from, e.g.
#   scripts/cluster/build_images.sh 111122223333.dkr.ecr.eu-west-1.amazonaws.com/avspot
#     avspot-head    head.Dockerfile    FROM rayproject/ray:2.60.0-py311-cpu  the driver, autoscaler, GCS
#     avspot-worker  worker.Dockerfile  FROM rayproject/ray:2.60.0-py311-gpu  the trials (torch + CUDA 13)
#     avspot-mlflow  mlflow.Dockerfile  FROM python:3.11-slim                 the MLflow server on the head
# Each is tagged TAG (default: dist/BUILD_ID, the hash of the wheel and constraints.txt) and written,
# with the digest the registry gave it, to dist/IMAGES; scripts/cluster/up.sh puts those digests into
# the config that `ray up` gets, so every node runs exactly the pushed bytes and installs nothing.
# For an ECR registry (*.dkr.ecr.<region>.amazonaws.com) it logs docker in and creates missing
# repositories (immutable tags, scan on push). DOCKER (default docker) and AWS (default aws) name the
# tools; SKIP_DIST=1 reuses an existing dist/. Needs docker with network access and, for ECR, the AWS CLI.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$root/scripts/cluster
dist=${AVSPOT_DIST_DIR:-$root/dist}
docker=${DOCKER:-docker}
aws=${AWS:-aws}
registry=${1:?usage: build_images.sh REGISTRY [TAG]   (e.g. ACCOUNT.dkr.ecr.REGION.amazonaws.com/avspot)}
registry=${registry%/}
roles=(head worker mlflow)

if [[ ${SKIP_DIST:-0} != 1 ]]; then
  "$here/build_dist.sh" "$dist"
fi
[[ -s $dist/BUILD_ID ]] || { echo "build_images.sh: $dist/BUILD_ID missing: run scripts/cluster/build_dist.sh" >&2; exit 1; }
build_id=$(tr -d '[:space:]' <"$dist/BUILD_ID")
tag=${2:-$build_id}
[[ $tag =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || { echo "build_images.sh: bad tag '$tag'" >&2; exit 2; }

host=${registry%%/*}
if [[ $host =~ ^([0-9]{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com$ ]]; then
  region=${BASH_REMATCH[2]}
  "$aws" ecr get-login-password --region "$region" | "$docker" login --username AWS --password-stdin "$host"
  path=${registry#"$host"}
  path=${path#/}
  for role in "${roles[@]}"; do
    repo=${path:+$path/}avspot-$role
    if ! "$aws" ecr describe-repositories --region "$region" --repository-names "$repo" >/dev/null 2>&1; then
      "$aws" ecr create-repository --region "$region" --repository-name "$repo" \
        --image-tag-mutability IMMUTABLE --image-scanning-configuration scanOnPush=true >/dev/null
    fi
  done
fi

declare -A digest
for role in "${roles[@]}"; do
  image=$registry/avspot-$role:$tag
  echo "build_images.sh: building $image from scripts/cluster/$role.Dockerfile" >&2
  "$docker" build --file "$here/$role.Dockerfile" --tag "$image" \
    --label "avspot.build_id=$build_id" "$dist"
  "$docker" push "$image"
  ref=$("$docker" inspect --format '{{index .RepoDigests 0}}' "$image")
  [[ $ref == *@sha256:* ]] || { echo "build_images.sh: no registry digest for $image (got '$ref')" >&2; exit 1; }
  digest[$role]=$registry/avspot-$role@${ref##*@}
done

tmp=$(mktemp "$dist/IMAGES.XXXXXX")
{
  echo "# written by scripts/cluster/build_images.sh; read by scripts/cluster/up.sh and registry_login.sh"
  echo "AVSPOT_BUILD_ID=$build_id"
  echo "AVSPOT_IMAGE_TAG=$tag"
  echo "AVSPOT_REGISTRY=$registry"
  echo "AVSPOT_IMAGE_HEAD=${digest[head]}"
  echo "AVSPOT_IMAGE_WORKER=${digest[worker]}"
  echo "AVSPOT_IMAGE_MLFLOW=${digest[mlflow]}"
  echo "AVSPOT_IMAGES_BUILT_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$tmp"
mv -f "$tmp" "$dist/IMAGES"
echo "build_images.sh: pushed build $build_id as $registry/avspot-{head,worker,mlflow}:$tag; $dist/IMAGES"
