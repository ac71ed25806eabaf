#!/usr/bin/env bash
# wait_mlflow.sh URL [TIMEOUT_S]: wait until the MLflow server at URL answers /health (unauthenticated
# even with basic auth), so that `ray up` fails at the head's setup, not in the first trial. Runs in the
# head's Ray container (host network, so 127.0.0.1:5000 is the avspot-mlflow container).
set -euo pipefail

# The image's interpreter (python); python3 where only that exists.
py=$(command -v python || command -v python3)

url=${1:?usage: wait_mlflow.sh URL [TIMEOUT_S]}
timeout_s=${2:-180}
"$py" - "$url" "$timeout_s" <<'PY'
import sys
import time
import urllib.request

url, timeout_s = sys.argv[1].rstrip("/") + "/health", float(sys.argv[2])
deadline = time.monotonic() + timeout_s
last = "no answer"
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            if resp.status == 200:
                print(f"wait_mlflow.sh: {url} is up")
                sys.exit(0)
            last = f"HTTP {resp.status}"
    except OSError as exc:
        last = str(exc)
    time.sleep(2)
sys.exit(
    f"wait_mlflow.sh: {url} did not answer in {timeout_s:.0f} s ({last}); see the server's log with\n"
    "  ray exec build/cluster/cluster.resolved.yaml 'docker logs --tail 50 avspot-mlflow'"
)
PY
