"""Screenshots of the MLflow UI for a tracking store: the search's trials in the runs table, a
chart view comparing them, a trial's artifacts, the search's analysis and the registered model.

    .venv/bin/python scripts/ui_screenshots.py --store sqlite:///quickstart/mlflow.db \\
        --experiment avspot-quickstart-... --out docs/img/

Starts `mlflow server` on 127.0.0.1 (one worker, no job runner) for the store and drives headless
Debian chromium (`apt-get install -y chromium`) through the Chrome DevTools protocol (on
127.0.0.1, aiohttp's websocket client), so that the UI state MLflow 3.17 keeps in the browser's
local storage can be set before a page loads:

- ``mlflow.workflowType_v1`` = machine_learning (the model-training sidebar; the URL's
  ``workflowType`` param too), ``mlflow.assistant.panelOpen_v1`` = false and
  ``mlflow.assistant.fab.autoOpenedOnFirstLoad_v1`` = true (a local server otherwise opens the
  assistant panel on the first visit);
- ``MLflowLocalStorage-1.1-ExperimentPage-["<id>"]-ReactComponentState``: the runs page's UI
  state (``selectedColumns``, ``columnOrder`` and ``columnWidths`` with keys such as
  ``params.`model.fusion```, ``metrics.`epochs```, ``attributes.`Dataset```; ``runsExpanded``
  {parent run id: true}; ``runsHiddenMode``; ``compareRunCharts`` and ``compareRunSections``
  for the chart view, which the URL's ``compareRunsMode=CHART`` opens).

The search state (sort, filter) stays in the URL. Stops the server and the browser by their pids.
Prints the files written and the URLs used.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support: outside the wheel
from tests.support.s3server import free_port  # noqa: E402
from tests.support.testing import mlflow_server_cmd, stop_group, wait_http  # noqa: E402

WIDTH, HEIGHT = 1600, 1000
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
    f"--window-size={WIDTH},{HEIGHT}",
]
# Trial columns of the runs table: the searched parameters and the outcome of each trial.
TRIAL_PARAMS = ("model.fusion", "model.pooling", "model.clusters", "model.window_s")
TRIAL_METRICS = (
    "best_val_average_map",
    "epochs",
    "cpu_core_s",
    "spot_s_per_half",
    "n_params",
)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    raise SystemExit("chromium not found: apt-get update && apt-get install -y chromium")


def _col(kind: str, key: str) -> str:
    return f"{kind}.`{key}`"


def ui_state(
    parents: list[str],
    columns: list[str],
    charts: list[dict] | None = None,
    *,
    width: int | None = None,
) -> dict[str, Any]:
    """The experiment page's persisted UI state: these columns (in this order, ``width`` px
    each), these parent runs expanded, every run shown (in the table and the charts), and
    ``charts`` in one section."""
    state: dict[str, Any] = {
        "selectedColumns": columns,
        "columnOrder": columns if width else [],
        "columnWidths": {c: width for c in columns} if width else {},
        "runsExpanded": {p: True for p in parents},
        "runsPinned": [],
        "runsHidden": [],
        "runsVisibilityMap": {},
        "runsHiddenMode": "SHOW_ALL",
        "viewMaximized": False,
        "runListHidden": False,
        "useGroupedValuesInCharts": True,
        "hideEmptyCharts": True,
        "groupBy": None,
        "groupsExpanded": {},
        "autoRefreshEnabled": False,
    }
    if charts:
        section = "avspot-search"
        state["compareRunSections"] = [
            {
                "uuid": section,
                "name": "Search",
                "display": True,
                "isReordered": True,
                "deleted": False,
                "isGenerated": False,
            }
        ]
        state["compareRunCharts"] = [
            {
                "uuid": f"chart-{i}",
                "metricSectionId": section,
                "deleted": False,
                "isGenerated": False,
                "runsCountToCompare": 100,
                **chart,
            }
            for i, chart in enumerate(charts)
        ]
        state["isAccordionReordered"] = True
    return state


def trial_charts(params: list[str]) -> list[dict]:
    """Charts comparing the trials: the validation metric per epoch, the best per trial, a
    parallel-coordinates chart of the searched params, and Average-mAP vs parameter count."""
    line = {
        "type": "LINE",
        "metricKey": "val_average_map",
        "selectedMetricKeys": ["val_average_map"],
        "displayName": "val_average_map per epoch",
        "lineSmoothness": 0,
        "xAxisScaleType": "linear",
        "scaleType": "linear",
        "range": {},
        "xAxisKey": "step",
        "selectedXAxisMetricKey": "",
        "yAxisKey": "metric",
        "yAxisExpressions": [],
        "ignoreOutliers": False,
        "useGlobalXaxisKey": False,
        "useGlobalLineSmoothing": False,
    }
    bar = {"type": "BAR", "metricKey": "best_val_average_map", "displayName": "best per trial"}
    parallel = {
        "type": "PARALLEL",
        "selectedParams": params,
        "selectedMetrics": ["best_val_average_map"],
        "showAllRuns": True,
    }
    scatter = {
        "type": "SCATTER",
        "xaxis": {"key": "n_params", "type": "METRIC"},
        "yaxis": {"key": "best_val_average_map", "type": "METRIC"},
    }
    return [line, bar, parallel, scatter]


class DevTools:
    """A minimal Chrome DevTools protocol client: one page, calls in order, events skipped."""

    def __init__(self, ws: Any) -> None:
        self.ws, self.n = ws, 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.n += 1
        await self.ws.send_json({"id": self.n, "method": method, "params": params})
        while True:
            msg = await self.ws.receive_json()
            if msg.get("id") == self.n:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    async def js(self, expression: str) -> Any:
        res = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return res.get("result", {}).get("value")

    async def load(self, url: str, ready: str, settle_s: float, timeout_s: float = 60) -> None:
        """Open ``url`` as a fresh document and wait until the JS ``ready`` is true, then
        ``settle_s`` more seconds (charts animate, tables size their columns)."""
        await self.call("Page.navigate", url="about:blank")
        await self.call("Page.navigate", url=url)
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            if await self.js(f"Boolean({ready})"):
                break
            await asyncio.sleep(0.5)
        else:
            print(f"  (not ready after {timeout_s:.0f}s: {url})", file=sys.stderr)
        await asyncio.sleep(settle_s)

    async def screenshot(self, png: Path) -> None:
        res = await self.call("Page.captureScreenshot", format="png")
        png.write_bytes(base64.b64decode(res["data"]))


async def _shoot(port: int, base: str, storage: dict[str, str], pages: list[tuple]) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/json/list") as resp:
            targets = await resp.json()
        ws_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        async with session.ws_connect(ws_url, max_msg_size=0) as ws:
            cdp = DevTools(ws)
            await cdp.call("Page.enable")
            await cdp.call(
                "Emulation.setDeviceMetricsOverride",
                width=WIDTH,
                height=HEIGHT,
                deviceScaleFactor=1,
                mobile=False,
            )
            await cdp.load(f"{base}/", "document.readyState === 'complete'", 0.5)
            for name, url, ready, settle_s, state in pages:
                items = {**storage, **state}
                await cdp.js(
                    "localStorage.clear();"
                    + "".join(
                        f"localStorage.setItem({json.dumps(k)}, {json.dumps(v)});"
                        for k, v in items.items()
                    )
                )
                await cdp.load(url, ready, settle_s)
                await cdp.screenshot(name)
                print(f"{name}  <-  {url}")


def _start_browser(profile: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    marker = Path(profile) / "DevToolsActivePort"
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60:
        if proc.poll() is not None:
            raise SystemExit(f"chromium exited with {proc.returncode}")
        if marker.exists() and marker.read_text().strip():
            return proc, int(marker.read_text().split()[0])
        time.sleep(0.2)
    stop_group(proc)
    raise SystemExit("chromium did not open its DevTools port in 60 s")


def _pages(client: Any, exp: Any, base: str, out: Path, model: str) -> list[tuple]:
    """(png, url, ready JS, settle seconds, extra local storage) for every screenshot."""
    eid = exp.experiment_id
    parents = client.search_runs(
        [eid],
        filter_string="tags.`avspot.role` = 'search'",
        order_by=["attributes.start_time DESC"],
    )
    trials = client.search_runs(
        [eid],
        filter_string="tags.`avspot.role` = 'trial' and attributes.status = 'FINISHED'",
        order_by=["metrics.best_val_average_map DESC"],
        max_results=1,
    )
    parent_ids = [p.info.run_id for p in parents[:1]]
    ui_key = f"MLflowLocalStorage-1.1-ExperimentPage-{json.dumps([eid])}-ReactComponentState"
    runs_url = f"{base}/#/experiments/{eid}/runs?workflowType=machine_learning"
    rows = "document.querySelectorAll('.ag-center-cols-container .ag-row').length > 1"
    dataset = _col("attributes", "Dataset")
    default_cols = [_col("attributes", "Source"), _col("attributes", "Models"), dataset]
    trial_cols = [
        *(_col("params", p) for p in TRIAL_PARAMS),
        *(_col("metrics", m) for m in TRIAL_METRICS),
        dataset,
    ]
    charts = trial_charts(list(TRIAL_PARAMS))
    pages = [
        ("experiment.png", runs_url, rows, 3, ui_state(parent_ids, default_cols)),
        (
            "trials.png",
            runs_url,
            rows,
            3,
            ui_state(parent_ids, trial_cols, width=104),
        ),
        (
            "trial_charts.png",
            f"{runs_url}&compareRunsMode=CHART",
            "document.querySelectorAll('.js-plotly-plot').length >= 3",
            6,
            ui_state(parent_ids, trial_cols, charts),
        ),
    ]
    art = "[...document.images].some(i => i.complete && i.naturalWidth > 300)"
    if parent_ids:
        pid = parent_ids[0]
        pages.append(
            (
                "search_analysis.png",
                f"{base}/#/experiments/{eid}/runs/{pid}/artifacts/analysis/intermediate_values.png",
                art,
                3,
                {},
            )
        )
    if trials:
        rid = trials[0].info.run_id
        pages.append(
            (
                "trial_artifacts.png",
                f"{base}/#/experiments/{eid}/runs/{rid}/artifacts/plots/learning_curves.png",
                art,
                3,
                {},
            )
        )
        pages.append(
            (
                "trial_overview.png",
                f"{base}/#/experiments/{eid}/runs/{rid}",
                "document.body.innerText.includes('Parameters')",
                3,
                {},
            )
        )
    pages.append(
        (
            "registered_model.png",
            f"{base}/#/models/{model}",
            "document.body.innerText.includes('Version')",
            3,
            {},
        )
    )
    return [
        (
            (out / name).resolve(),
            url,
            ready,
            settle,
            {ui_key: json.dumps(state)} if state else {},
        )
        for name, url, ready, settle, state in pages
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True, help="backend store URI, e.g. sqlite:///mlflow.db")
    ap.add_argument("--artifacts", default=None, help="--artifacts-destination (default: none)")
    ap.add_argument(
        "--experiment", default=None, help="experiment name (default: the most recently created)"
    )
    ap.add_argument("--model", default="avspot-spotter")
    ap.add_argument("--out", default="docs/img")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--only", default="", help="comma-separated PNG names to take (default: all)")
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
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    port = args.port or free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = mlflow_server_cmd(port, args.store, args.artifacts)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    storage = {
        "mlflow.workflowType_v1": json.dumps("machine_learning"),
        "mlflow.assistant.panelOpen_v1": "false",
        "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true",
    }
    try:
        try:
            wait_http(f"{base}/health", server)
        except (RuntimeError, TimeoutError) as exc:
            raise SystemExit(f"mlflow server: {exc}") from None
        pages = _pages(client, exp, base, out, args.model)
        if args.only:
            pages = [p for p in pages if p[0].name in args.only.split(",")]
        with tempfile.TemporaryDirectory(prefix="avspot-chromium-") as profile:
            browser, devtools_port = _start_browser(profile)
            try:
                asyncio.run(_shoot(devtools_port, base, storage, pages))
            finally:
                stop_group(browser)
    finally:
        stop_group(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
