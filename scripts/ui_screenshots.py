"""Screenshots of the MLflow UI for a tracking store: experiment page with nested trial runs, a
trial run's artifacts (plots), and the registered model page with its aliases.

    .venv/bin/python scripts/ui_screenshots.py --store sqlite:///quickstart/mlflow.db \\
        --experiment avspot-smoke-... --out screenshots/

Starts `mlflow server` on 127.0.0.1 (one worker, no job runner) for the store, drives headless
Debian chromium (`apt-get install -y chromium`), stops the server by its pid. Prints the URLs used.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from avspot.datasets.s3server import free_port
from avspot.search.testing import wait_http

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=15000",
    "--window-size=1600,1000",
]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    raise SystemExit("chromium not found: apt-get update && apt-get install -y chromium")


def shoot(browser: str, url: str, png: Path) -> None:
    with tempfile.TemporaryDirectory() as profile:
        cmd = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}", url]
        subprocess.run(cmd, check=True, timeout=120, capture_output=True)
    print(f"{png}  <-  {url}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True, help="backend store URI, e.g. sqlite:///mlflow.db")
    ap.add_argument("--artifacts", default=None, help="--artifacts-destination (default: none)")
    ap.add_argument(
        "--experiment", default=None, help="experiment name (default: the most recently created)"
    )
    ap.add_argument("--model", default="avspot-spotter")
    ap.add_argument("--out", default="screenshots")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args(argv)

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=args.store, registry_uri=args.store)
    if args.experiment is None:
        exps = [e for e in client.search_experiments() if e.name != "Default"]
        if not exps:
            print(f"no experiment in {args.store}; run `make quickstart` first", file=sys.stderr)
            return 2
        args.experiment = max(exps, key=lambda e: e.creation_time or 0).name
    exp = client.get_experiment_by_name(args.experiment)
    if exp is None:
        print(f"experiment {args.experiment!r} not found in {args.store}", file=sys.stderr)
        return 2
    trials = client.search_runs(
        [exp.experiment_id],
        filter_string="tags.`avspot.role` = 'trial' and attributes.status = 'FINISHED'",
        order_by=["metrics.best_val_average_map DESC"],
        max_results=1,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    port = args.port or free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        args.store,
    ]
    if args.artifacts:
        cmd += ["--artifacts-destination", args.artifacts]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        try:
            wait_http(f"{base}/health", server)
        except (RuntimeError, TimeoutError) as exc:
            raise SystemExit(f"mlflow server: {exc}") from None
        browser = _chromium()
        pages = {"experiment.png": f"{base}/#/experiments/{exp.experiment_id}/runs"}
        if trials:
            rid = trials[0].info.run_id
            pages["trial_artifacts.png"] = (
                f"{base}/#/experiments/{exp.experiment_id}/runs/{rid}/artifacts/plots/learning_curves.png"
            )
            pages["trial_overview.png"] = f"{base}/#/experiments/{exp.experiment_id}/runs/{rid}"
        pages["registered_model.png"] = f"{base}/#/models/{args.model}"
        for name, url in pages.items():
            shoot(browser, url, (out / name).resolve())
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
