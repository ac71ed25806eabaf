#!/usr/bin/env bash
# mlflow_server.sh: entrypoint of the avspot-mlflow container on the head node. cluster.yaml starts that
# container with `docker run --restart unless-stopped` (docker is the supervisor: it restarts the server
# when it exits, and at boot) and passes the server command as arguments, e.g.
#   mlflow server --app-name basic-auth --host 0.0.0.0 --port 5000 --workers 1 \
#     --serve-artifacts --artifacts-destination s3://BUCKET/mlflow-artifacts
# This script adds what must not appear in cluster.yaml, then execs that command:
#   - the backend store URI (Postgres on RDS, with its password): $AVSPOT_MLFLOW_BACKEND_STORE_URI if
#     set, else the SecureString SSM parameter named by $AVSPOT_MLFLOW_DB_PARAMETER, read with the head's
#     instance profile; passed as MLFLOW_BACKEND_STORE_URI (environment, not argv: `ps` shows argv);
#   - the basic-auth configuration: users and permissions in the same database, admin user and password
#     from MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (the --env-file of make_secrets.sh), which
#     are also what every client on the cluster uses.
# It refuses a sqlite or file store (kept in this container, lost on `ray down` or a new head) and a
# server bound to 0.0.0.0 without --app-name basic-auth.
set -euo pipefail

# The image's interpreter (python); python3 where only that exists.
py=$(command -v python || command -v python3)

die() {
  echo "mlflow_server.sh: $*" >&2
  exit 2
}

[[ $# -gt 0 ]] || die "no server command given"
: "${MLFLOW_TRACKING_USERNAME:?mlflow_server.sh: MLFLOW_TRACKING_USERNAME unset (--env-file mlflow.env)}"
: "${MLFLOW_TRACKING_PASSWORD:?mlflow_server.sh: MLFLOW_TRACKING_PASSWORD unset (--env-file mlflow.env)}"
: "${MLFLOW_FLASK_SERVER_SECRET_KEY:?mlflow_server.sh: MLFLOW_FLASK_SERVER_SECRET_KEY unset (--env-file mlflow.env)}"

args=" $* "
if [[ $args == *" --host 0.0.0.0 "* && $args != *" --app-name basic-auth "* ]]; then
  die "refusing to listen on 0.0.0.0 without --app-name basic-auth"
fi

uri=${AVSPOT_MLFLOW_BACKEND_STORE_URI:-}
if [[ -z $uri ]]; then
  param=${AVSPOT_MLFLOW_DB_PARAMETER:?mlflow_server.sh: set AVSPOT_MLFLOW_DB_PARAMETER (SSM parameter name)}
  uri=$("$py" - "$param" <<'PY'
import sys

import boto3

param = boto3.client("ssm").get_parameter(Name=sys.argv[1], WithDecryption=True)["Parameter"]
print(param["Value"])
PY
  ) || die "cannot read SSM parameter $param (head role: ssm:GetParameter on it)"
fi
case $uri in
  postgresql://* | postgresql+psycopg2://* | mysql://* | mysql+pymysql://*) ;;
  *) die "refusing backend store '${uri%%:*}:...': only a database outside this container (RDS) survives ray down" ;;
esac

umask 077
conf_dir=$(mktemp -d)
# configparser interpolates '%': a URL-encoded password needs '%%'.
cat >"$conf_dir/basic_auth.ini" <<INI
[mlflow]
default_permission = READ
database_uri = ${uri//%/%%}
admin_username = ${MLFLOW_TRACKING_USERNAME}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
INI
export MLFLOW_AUTH_CONFIG_PATH=$conf_dir/basic_auth.ini
export MLFLOW_AUTH_ADMIN_USERNAME=$MLFLOW_TRACKING_USERNAME
export MLFLOW_AUTH_ADMIN_PASSWORD=$MLFLOW_TRACKING_PASSWORD
export MLFLOW_BACKEND_STORE_URI=$uri
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}
unset AVSPOT_MLFLOW_BACKEND_STORE_URI MLFLOW_TRACKING_USERNAME MLFLOW_TRACKING_PASSWORD
echo "mlflow_server.sh: backend ${uri%%:*}://... (from ${param:-environment}), starting: $*" >&2
exec "$@"
