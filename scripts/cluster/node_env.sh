#!/usr/bin/env bash
# node_env.sh: the environment every avspot process on a cluster node needs. Runs on every node, in the
# Ray container, as a setup command of cluster.yaml (shipped in dist/cluster/ by build_dist.sh).
#
# Writes ~/.avspot-env (mode 0600) with
#   MLFLOW_TRACKING_URI       http://<head private IP>:5000, the MLflow server on the head
#   MLFLOW_TRACKING_USERNAME  basic-auth credentials of that server, from the mounted secrets folder
#   MLFLOW_TRACKING_PASSWORD
#   AVSPOT_BUILD_ID           the build in dist/ (sha256 of the wheel and the constraints)
# and adds one line to ~/.bashrc that exports it. Ray runs every setup command, `ray start` and the
# `ray attach` shell as `bash --login -c -i 'source ~/.bashrc; ...'`, so the file reaches the attach
# shell and `ray start`; the raylet started there passes its environment to every worker process
# (trials, Ray Data tasks) and to the drivers of `ray job submit` jobs.
#
# The head's IP: on workers the autoscaler exports RAY_HEAD_IP into setup commands; on the head this
# script asks Ray for the node's own IP (the address `ray start --head` advertises).
# Overrides, for tests: AVSPOT_NODE_HOME (default $HOME), AVSPOT_SECRETS_DIR (default ~/.avspot),
# AVSPOT_DIST_DIR (default ~/dist), AVSPOT_HEAD_IP, AVSPOT_MLFLOW_PORT (default 5000).
set -euo pipefail

# The image's interpreter (python); python3 where only that exists.
py=$(command -v python || command -v python3)

home=${AVSPOT_NODE_HOME:-$HOME}
secrets=${AVSPOT_SECRETS_DIR:-$home/.avspot}
dist=${AVSPOT_DIST_DIR:-$home/dist}
port=${AVSPOT_MLFLOW_PORT:-5000}
env_file=$home/.avspot-env

head_ip=${AVSPOT_HEAD_IP:-${RAY_HEAD_IP:-}}
if [[ -z $head_ip ]]; then
  head_ip=$("$py" -c 'from ray._private.services import get_node_ip_address; print(get_node_ip_address())')
fi
if [[ ! $head_ip =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  echo "node_env.sh: cannot tell the head's IP (got '$head_ip')" >&2
  exit 1
fi

# The two client credentials only: mlflow.env also holds the server's Flask secret key.
creds=$secrets/mlflow.env
user=$(sed -n 's/^MLFLOW_TRACKING_USERNAME=//p' "$creds" | tail -n 1)
password=$(sed -n 's/^MLFLOW_TRACKING_PASSWORD=//p' "$creds" | tail -n 1)
if [[ -z $user || -z $password ]]; then
  echo "node_env.sh: $creds lacks MLFLOW_TRACKING_USERNAME/PASSWORD (run scripts/cluster/make_secrets.sh, then ray up)" >&2
  exit 1
fi
build_id=$(cat "$dist/BUILD_ID" 2>/dev/null || echo unknown)

umask 077
tmp=$(mktemp "$env_file.XXXXXX")
{
  echo "# written by dist/cluster/node_env.sh at every ray up; sourced by ~/.bashrc"
  printf 'MLFLOW_TRACKING_URI=%q\n' "http://$head_ip:$port"
  printf 'MLFLOW_TRACKING_USERNAME=%q\n' "$user"
  printf 'MLFLOW_TRACKING_PASSWORD=%q\n' "$password"
  printf 'AVSPOT_BUILD_ID=%q\n' "$build_id"
} >"$tmp"
mv -f "$tmp" "$env_file"

hook='[ -f ~/.avspot-env ] && { set -a; . ~/.avspot-env; set +a; }  # avspot cluster env'
touch "$home/.bashrc"
grep -qxF "$hook" "$home/.bashrc" || printf '%s\n' "$hook" >>"$home/.bashrc"
echo "node_env.sh: MLFLOW_TRACKING_URI=http://$head_ip:$port, build $build_id"
