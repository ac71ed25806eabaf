"""The leaderboard from a real ``ResultGrid``: each trial's best is its last report's running best,
right even where Tune's own history misses an epoch; errors and stopped trials counted."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from avspot.search.tuning.leaderboard import (
    best_row,
    leaderboard,
    print_leaderboard,
    totals,
    trial_best,
)
from avspot.search.tuning.tuner import SearchResult

pytestmark = pytest.mark.integration

METRIC = "val_average_map"
# Per trial: the reports it makes, (epoch, value, running best or None: not reported), then
# whether it raises after them. Running bests are what the trainer checkpoints, so an epoch
# whose report Tune lost (`gap`: epoch 2, after a node loss) still counts in later reports.
PLANS = {
    "full": ([(1, 0.2, 0.2), (2, 0.6, 0.6), (3, 0.4, 0.6)], False),
    "gap": ([(1, 0.3, 0.3), (3, 0.5, 0.8)], False),  # epoch 2 (0.8) never reached Tune
    "old": ([(1, 0.7, None), (2, 0.65, None)], False),  # recorded before best_<metric> existed
    "stopped": ([(1, 0.1, 0.1)], False),  # the scheduler stopped it: never finished
    "error": ([(1, 0.15, 0.15)], True),
    "no_report": ([], True),
}


def _trial(config: dict) -> None:
    from ray import tune

    reports, raises = PLANS[config["plan"]]
    last_epoch = 3 if config["plan"] != "old" else 2
    for epoch, value, best in reports:
        report = {METRIC: value, "epoch": epoch}
        if best is not None:
            report |= {f"best_{METRIC}": best, "best_epoch": epoch}
        report["finished"] = float(epoch == last_epoch)
        tune.report(report)
    if raises:
        raise RuntimeError(f"trial {config['plan']} failed")


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def grid(ray_local, tmp_path_factory: pytest.TempPathFactory):
    from ray import tune

    tuner = tune.Tuner(
        _trial,
        param_space={"plan": tune.grid_search(list(PLANS))},
        run_config=tune.RunConfig(
            name="leaderboard",
            storage_path=str(tmp_path_factory.mktemp("ray_results")),
            failure_config=tune.FailureConfig(max_failures=0),
            verbose=0,
        ),
    )
    return tuner.fit()


def _by_plan(rows: list[dict]) -> dict[str, dict]:
    return {r["config"]["plan"]: r for r in rows}


def test_each_trials_best_is_its_last_reports_running_best(grid) -> None:
    rows = leaderboard(grid, METRIC)
    by = _by_plan(rows)
    assert {p: r["best"] for p, r in by.items() if p != "no_report"} == {
        "full": 0.6,
        "gap": 0.8,  # Tune's history never saw it
        "old": 0.65,  # no best_<metric>: its last report's metric
        "stopped": 0.1,
        "error": 0.15,
    }
    assert math.isnan(by["no_report"]["best"])
    assert [r["config"]["plan"] for r in rows] == [
        "gap",
        "old",
        "full",
        "error",
        "stopped",
        "no_report",
    ]
    # Tune's per-trial history of `gap` lacks epoch 2, so its maximum is wrong
    gap = next(r for r in grid if r.config["plan"] == "gap")
    assert list(gap.metrics_dataframe["epoch"]) == [1, 3]
    assert gap.metrics_dataframe[METRIC].max() == 0.5
    # Ray's own pick by the running best agrees with the leaderboard's first row
    best = grid.get_best_result(metric=f"best_{METRIC}", mode="max", scope="last")
    assert best_row(rows)["trial_id"] == best.metrics["trial_id"] == by["gap"]["trial_id"]


def test_rows_say_epochs_finished_errors_and_where(grid) -> None:
    by = _by_plan(leaderboard(grid, METRIC))
    assert {p: r["epochs"] for p, r in by.items()} == {
        "full": 3,
        "gap": 3,
        "old": 2,
        "stopped": 1,
        "error": 1,
        "no_report": 0,
    }
    assert {p for p, r in by.items() if r["finished"]} == {"full", "gap", "old"}
    assert {p for p, r in by.items() if r["error"]} == {"error", "no_report"}
    for plan, r in by.items():
        assert Path(r["path"]).is_dir(), plan
        if plan != "no_report":
            assert r["last"]["epoch"] == r["epochs"] and isinstance(r["trial_id"], str)
    assert by["gap"]["last"][METRIC] == 0.5 and by["gap"]["last"][f"best_{METRIC}"] == 0.8
    assert totals(list(by.values())) == {"trials": 6, "trial_epochs": 10, "stopped_early": 1}


def test_the_printed_leaderboard(grid) -> None:
    rows = leaderboard(grid, METRIC)
    result = SearchResult(
        experiment="leaderboard",
        path="/results/leaderboard",
        rows=rows,
        best=best_row(rows),
        **totals(rows),
        wall_s=90.0,
        parent_run_id="abc123",
        model_version="4",
    )
    lines: list[str] = []
    print_leaderboard(
        result, METRIC, lines.append, tracking_uri="sqlite:///m.db", summary=lambda c: c["plan"]
    )
    assert lines[1] == "6 trials, 10 trial-epochs, 1 stopped early by ASHA, 1.5 min"
    table = [line.split() for line in lines[3:9]]
    assert [t[0] for t in table] == ["1", "2", "3", "4", "5", "6"]
    assert [t[3] for t in table] == ["gap", "old", "full", "error", "stopped", "no_report"]
    assert table[0][1:3] == ["0.8000", "3"] and table[3][4:] == ["(error)"]
    assert "results: /results/leaderboard" in lines
    assert "MLflow: parent run abc123 in sqlite:///m.db" in lines
    assert "registered avspot-spotter version 4 as @challenger" in lines


def test_trial_best_falls_back_and_refuses_what_is_not_a_number() -> None:
    assert trial_best({METRIC: 0.4, f"best_{METRIC}": 0.5}, METRIC) == 0.5
    assert trial_best({METRIC: 0.4}, METRIC) == 0.4
    assert trial_best({METRIC: 0.4, f"best_{METRIC}": float("nan")}, METRIC) == 0.4
    assert math.isnan(trial_best({METRIC: "0.4"}, METRIC))
    assert math.isnan(trial_best({}, METRIC))
