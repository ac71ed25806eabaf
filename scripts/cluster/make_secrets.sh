#!/usr/bin/env bash
# make_secrets.sh [DIR]: create the cluster's secrets once, on the machine that runs `ray up`, in DIR
# (default ~/.avspot/cluster, mode 0700). cluster.yaml mounts DIR on every node at /home/ray/.avspot.
#   ray_auth_token  Ray's token (RAY_AUTH_MODE=token): every node reads it via RAY_AUTH_TOKEN_PATH, and
#                   so do clients here: RAY_AUTH_TOKEN_PATH=DIR/ray_auth_token ray job submit ...
#   mlflow.env      MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD: the MLflow server's admin
#                   account (basic auth) and the credentials every client on the cluster logs in with;
#                   MLFLOW_FLASK_SERVER_SECRET_KEY: the server's CSRF key.
# Existing files are kept (a new token needs `ray up` and every client to follow); --rotate replaces them.
# Nothing is printed but the paths. The MLflow admin password is set when the server first meets an
# empty user table: after that, change it with MLflow's update-password API, then here.
set -euo pipefail

rotate=no
if [[ ${1:-} == --rotate ]]; then
  rotate=yes
  shift
fi
dir=${1:-$HOME/.avspot/cluster}
umask 077
mkdir -p "$dir"
chmod 700 "$dir"

hex() { python3 -c 'import secrets; print(secrets.token_hex(32))'; }

if [[ $rotate == yes || ! -s $dir/ray_auth_token ]]; then
  hex | tr -d '\n' >"$dir/ray_auth_token"
fi
if [[ $rotate == yes || ! -s $dir/mlflow.env ]]; then
  {
    echo "MLFLOW_TRACKING_USERNAME=avspot"
    echo "MLFLOW_TRACKING_PASSWORD=$(hex)"
    echo "MLFLOW_FLASK_SERVER_SECRET_KEY=$(hex)"
  } >"$dir/mlflow.env"
fi
chmod 600 "$dir/ray_auth_token" "$dir/mlflow.env"
echo "make_secrets.sh: $dir/ray_auth_token, $dir/mlflow.env"
