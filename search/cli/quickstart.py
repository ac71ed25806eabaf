"""``avspot quickstart``: the whole loop on synthetic data in a few minutes on a laptop.

synthesize a small table -> ``smoke`` search on local Ray (MLflow on sqlite in the workdir) ->
register and promote the best model -> spot the test games with the champion -> Average-mAP.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from avspot.avmodels.evaluate import evaluate
from avspot.avmodels.spotting import spot_halves
from avspot.datasets.manifest import read_manifest
from avspot.datasets.synth import synthesize
from avspot.datasets.table import iter_halves
from avspot.search.tracking.registry import load_spotter, promote
from avspot.search.tuning.tuner import SearchOptions, run_search

QUICKSTART_GAMES = 12
QUICKSTART_HALF_MINUTES = 15.0
QUICKSTART_TRIALS = 4
EXPERIMENT = "avspot-quickstart"


def quickstart(
    workdir: str | Path, *, games: int = QUICKSTART_GAMES, trials: int = QUICKSTART_TRIALS
) -> dict:
    """Run the loop in `workdir`; returns the figures it printed."""

    work = Path(workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{work / 'mlflow.db'}")
    t0 = time.perf_counter()

    table = work / "table"
    if (table / "manifest.json").exists():
        manifest = read_manifest(str(table))
        print(f"[1/5] reusing the synthetic table at {table} ({manifest.counts['games']} games)")
    else:
        print(
            f"[1/5] synthesizing {games} games ({QUICKSTART_HALF_MINUTES:g}-min halves) -> {table}"
        )
        manifest = synthesize(str(table), games=games, seed=0, half_minutes=QUICKSTART_HALF_MINUTES)
    print(
        f"      data source: {manifest.source} (not SoccerNet); fingerprint {manifest.fingerprint[:12]}"
    )

    print(f"[2/5] smoke search: {trials} trials, TPE + ASHA on local Ray")
    experiment = f"{EXPERIMENT}-{int(time.time())}"
    result = run_search(
        SearchOptions(
            data=str(table),
            space="smoke",
            trials=trials,
            experiment=experiment,
            storage=str(work / "ray_results"),
            max_epochs=3,
        )
    )
    if result.best is None:
        raise RuntimeError("the smoke search produced no usable trial")

    print("[3/5] promoting the best model to @champion")
    promote(experiment, alias="champion", force=False, out=print)

    uri = "models:/avspot-spotter@champion"
    predictions = work / "predictions"
    print(f"[4/5] spotting the test games with {uri} -> {predictions}")
    model, _ = load_spotter(uri)
    spot_halves(model, iter_halves(str(table), "test"), predictions, "nms", source=str(table))

    res = evaluate(str(table), str(predictions), metric="loose", split="test")
    pc = res["per_class"]
    print(
        f"[5/5] test Average-mAP (loose) on SYNTHETIC data: {res['average_map']:.4f} "
        f"(card {pc['card']:.3f}, subs {pc['subs']:.3f}, soccer {pc['soccer']:.3f})"
    )
    elapsed = time.perf_counter() - t0
    store = os.environ["MLFLOW_TRACKING_URI"]
    print(f"\ndone in {elapsed / 60:.1f} min. Browse the runs and the registered model:")
    print(
        f"  .venv/bin/mlflow server --backend-store-uri {store} --host 127.0.0.1 --port 5000 --workers 1"
    )
    print("  then open http://127.0.0.1:5000")
    return {"test_average_map": res["average_map"], "per_class": pc, "minutes": elapsed / 60}
