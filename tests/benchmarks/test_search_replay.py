"""benchmarks/search_replay: the recording format, the anytime curves, and replays through real
Ray Tune + Optuna + ASHA on a small handmade recording (8 configurations x 4 epochs)."""

from __future__ import annotations

import importlib.util
import io
import json
import math
import os
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "benchmarks" / "search_replay"


def _load(name: str) -> ModuleType:
    """A script of benchmarks/search_replay as a module (the folder is not a package)."""
    if name in sys.modules and getattr(sys.modules[name], "__file__", "") == str(
        SCRIPTS / f"{name}.py"
    ):
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


replay = _load("replay")
R = _load("_recording")
project = _load("_project")

FUSIONS = ["video", "audio", "before_fc", "early_512"]
WINDOWS = [20.0, 60.0]
EPOCHS = 4
# Per configuration: (epoch-1 value, final value). Two slow starters end best; one fast starter
# leads after 1 epoch and fades; early_512 60 s stops after 3 epochs on its own (early stop).
SHAPES = {
    ("video", 20.0): (0.30, 0.40),
    ("video", 60.0): (0.25, 0.33),
    ("audio", 20.0): (0.10, 0.20),
    ("audio", 60.0): (0.05, 0.15),
    ("before_fc", 20.0): (0.08, 0.60),  # slow starter, the grid's best (0.60 at epoch 4)
    ("before_fc", 60.0): (0.12, 0.50),
    ("early_512", 20.0): (0.45, 0.35),  # fast starter that fades
    ("early_512", 60.0): (0.20, 0.30),
}


def _curve(first: float, last: float, n: int = EPOCHS) -> list[float]:
    return [round(first + (last - first) * (i / (n - 1)) ** 0.5, 6) for i in range(n)]


def write_recording(path: Path) -> Path:
    """The handmade recording: 8 configurations, 4 epochs each (one early-stopped at 3)."""
    entries = []
    for (fusion, window), (first, last) in SHAPES.items():
        n = 3 if (fusion, window) == ("early_512", 60.0) else EPOCHS
        curve = _curve(first, last, n)
        entries.append(
            {
                "point": {"fusion": fusion, "window_s": window},
                "epochs": n,
                "stop_reason": "early_stop" if n < EPOCHS else "max_epochs",
                "curves": {
                    "val_average_map": curve,
                    "val_map": [v / 2 for v in curve],
                    "train_loss": [1.0 / (i + 1) for i in range(n)],
                },
                "epoch_s": [1.0 + (fusion == "early_512")] * n,
            }
        )
    doc = {
        "format": R.FORMAT,
        "version": R.VERSION,
        "header": {
            "metric": "val_average_map",
            "max_epochs": EPOCHS,
            "seed": 0,
            "axes": {"fusion": FUSIONS, "window_s": WINDOWS},
            "fixed": {},
            "data": {"source": "handmade"},
            "baselines": [{"fusion": "video", "window_s": 20.0}],
        },
        "entries": entries,
    }
    R.atomic_write_json(path, doc)
    return path


@pytest.fixture()
def recording(tmp_path: Path) -> Path:
    return write_recording(tmp_path / "grid.json")


# ---- pure functions ------------------------------------------------------------------------------


def test_anytime_curve_on_a_hand_computed_case():
    curve = replay.anytime_curve([0.1, 0.3, 0.2, 0.5], best=0.5, total=6)
    assert curve.tolist() == pytest.approx([0.0, 0.2, 0.6, 0.6, 1.0, 1.0, 1.0])
    assert replay.at_fraction(curve, 0.25) == pytest.approx(0.2)  # floor(1.5) = 1 epoch
    assert replay.at_fraction(curve, 0.5) == pytest.approx(0.6)  # 3 epochs
    assert replay.first_reaching(curve, 0.99) == pytest.approx(4 / 6)
    assert replay.first_reaching(curve[:4], 0.99) is None
    # a search that ended early holds its best; a longer one is cut at the grid's total
    assert replay.anytime_curve([0.4], 0.5, 3).tolist() == pytest.approx([0, 0.8, 0.8, 0.8])
    assert replay.anytime_curve([0.1, 0.2, 0.5, 0.5], 0.5, 2).tolist() == pytest.approx(
        [0, 0.2, 0.4]
    )


def test_a_diverged_epoch_is_null_reported_as_nan_and_skipped(recording):
    doc = json.loads(recording.read_text())
    doc["entries"][4]["curves"]["val_average_map"][3] = None  # before_fc 20 s, epoch 4: 0.60
    rec = R.from_dict(doc)
    # the null is skipped: the best is now its epoch 3, 0.08 + 0.52 * sqrt(2/3)
    assert rec.best() == (0.504578, "fusion=before_fc window_s=20.0", 3)
    reports = replay.report_table(rec)["fusion=before_fc window_s=20.0"]
    assert math.isnan(reports[3]["val_average_map"]) and reports[3]["finished"] == 1.0
    curve = replay.anytime_curve([0.1, math.nan, 0.4], best=0.5, total=3)
    assert curve.tolist() == pytest.approx([0.0, 0.2, 0.2, 0.8])
    doc["entries"][0]["curves"]["val_average_map"][0] = "x"
    with pytest.raises(R.RecordingError, match="numbers or null"):
        R.from_dict(doc)


def test_run_stats_and_summary_count_what_a_search_spent(recording):
    rec = R.load(recording)
    best = rec.best()[0]
    vfc = "fusion=before_fc window_s=20.0"
    events = [
        ("a", "fusion=video window_s=20.0", 1, 0.30),
        ("b", "fusion=audio window_s=20.0", 1, 0.10),  # stopped by ASHA at its first rung
        ("c", vfc, 1, 0.08),
        ("c", vfc, 2, 0.3),
    ]
    run = replay.Run(
        replay.Spec("tpe", grace=1), 0, 4, events, {"a": False, "b": False, "c": False}, 0.5
    )
    s = replay.run_stats(rec, run, best)
    assert s["trials"] == 3 and s["trial_epochs"] == 4
    assert s["stopped_early"] == 2  # a and b; c was ended by the budget
    assert s["stopped_at_first_rung"] == 2
    assert s["at_target_budget"] == pytest.approx(0.30 / 0.60)  # 25% of 31 epochs: 7 >= 4
    summary = replay.summarize("x", [s, {**s, "at_target_budget": 1.0, "seed": 1}])
    assert summary["at_target_budget"]["median"] == pytest.approx((0.5 + 1.0) / 2)
    assert summary["meets_target"] is False  # a median of 0.75


def test_meets_target_is_the_median_over_seeds(recording):
    rec = R.load(recording)
    best = rec.best()[0]
    base = replay.run_stats(rec, replay.Run(replay.Spec("grid"), 0, 31, [], {}, 0.0), best)
    rows = [{**base, "at_target_budget": v, "seed": i} for i, v in enumerate([0.98, 0.995, 1.0])]
    assert replay.summarize("m", rows)["meets_target"] is True  # median 0.995
    rows[1]["at_target_budget"] = 0.97
    assert replay.summarize("m", rows)["meets_target"] is False  # median 0.98


def test_recording_format_validation_and_merging(recording, tmp_path):
    rec = R.load(recording)
    assert rec.keys[0] == "fusion=video window_s=20.0" and len(rec.keys) == 8
    assert rec.total_epochs == 31  # 7 x 4 + 3
    assert rec.best() == (0.6, "fusion=before_fc window_s=20.0", 4)
    rec.require_complete()

    doc = json.loads(recording.read_text())
    part = tmp_path / "part.json"
    R.atomic_write_json(part, {**doc, "entries": doc["entries"][:5]})
    with pytest.raises(R.RecordingError, match="3 of 8 configurations"):
        R.load(part).require_complete()
    n = R.append_entry(part, doc["entries"][6])
    n = R.append_entry(part, doc["entries"][6])  # the same key again: replaced, not doubled
    assert n == 6 and len(R.load(part).entries) == 6
    with pytest.raises(R.RecordingError, match="other max_epochs"):
        R.start_session(part, {**doc["header"], "max_epochs": 5}, {})

    bad = {**doc, "entries": [*doc["entries"], doc["entries"][0]]}
    with pytest.raises(R.RecordingError, match="twice"):
        R.from_dict(bad)
    short = json.loads(json.dumps(doc))
    short["entries"][0]["curves"]["val_average_map"].pop()
    with pytest.raises(R.RecordingError, match="each of its 4 epochs"):
        R.from_dict(short)


def test_claims_are_exclusive_and_a_dead_recorders_claim_is_taken_over(tmp_path):
    path = tmp_path / "g.json"
    assert R.claim(path, "k") and not R.claim(path, "k")
    R.release(path, "k")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    claim = R._claim_file(path, "k2")
    claim.write_text(json.dumps({"key": "k2", "pid": int(dead.stdout), "host": os.uname()[1]}))
    assert R.claim(path, "k2")  # its recorder is gone


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_replay_settings_match_avspot_search():
    """The replay runs the sampler and the ASHA defaults of avspot search itself."""
    for trials in (4, 15, 54, 162):
        limiter = project.tuner_searcher(trials=trials, seed=7)
        assert limiter.max_concurrent == 1
        assert type(limiter.searcher) is project.optuna_search_cls()
        real = limiter.searcher._sampler
        ours = project.tpe_sampler(seed=7, n_startup_trials=project.tuner_startup_trials(trials))
        for attr in (
            "_n_startup_trials",
            "_multivariate",
            "_group",
            "_constant_liar",
            "_n_ei_candidates",
            "_gamma",
            "_parzen_estimator_parameters",
            "_warn_independent_sampling",
            "_constraints_func",
        ):
            assert getattr(ours, attr) == getattr(real, attr), attr
    assert project.search_asha_defaults() == replay.DEFAULT_ASHA


# ---- through real Tune ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_started():
    """One local Ray for the module (the replay's own init: 2 CPUs, no dashboard)."""
    import ray

    saved = os.environ.get("PYTHONPATH")
    started = replay.init_ray(2)
    yield
    if started:
        ray.shutdown()
    if saved is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = saved


@pytest.fixture()
def replayer(recording, tmp_path, ray_started):
    replay.quiet()
    return replay.Replayer(R.load(recording), str(tmp_path / "tune"))


def _trials_in_order(run):
    """[(key, [epochs reported])] per trial, asserting that trials never overlapped."""
    order, seen = [], set()
    for trial, key, epoch, _ in run.events:
        if not order or order[-1][0] != trial:
            assert trial not in seen, "a trial reported again after another one started"
            seen.add(trial)
            order.append((trial, key, []))
        order[-1][2].append(epoch)
    return [(key, epochs) for _, key, epochs in order]


@pytest.mark.integration
def test_grid_order_replays_every_recorded_value_exactly(replayer):
    rec = replayer.rec
    run = replayer.run(replay.Spec("grid"), seed=0, budget=1.0)
    trials = _trials_in_order(run)
    assert sorted(k for k, _ in trials) == sorted(rec.keys)  # every configuration once
    for key, epochs in trials:
        assert epochs == list(range(1, rec.entries[key]["epochs"] + 1))  # to its last epoch
    for _, key, epoch, value in run.events:
        assert value == rec.curve(key)[epoch - 1]  # exactly the recorded value
    assert len(run.events) == rec.total_epochs == 31
    assert max(v for *_, v in run.events) == rec.best()[0]
    assert all(run.finished.values()) and len(run.finished) == 8  # finished=1 on the last epoch
    assert run.optuna_states == {"COMPLETE": 8}
    s = replay.run_stats(rec, run, rec.best()[0])
    assert s["found_best"] and s["stopped_early"] == 0 and s["trial_epochs"] == 31


@pytest.mark.integration
def test_asha_stops_trials_at_its_rungs_and_optuna_hears_pruned(replayer):
    rec = replayer.rec
    run = replayer.run(replay.Spec("grid", grace=1, rf=3.0), seed=0, budget=1.0)
    trials = _trials_in_order(run)
    assert len(trials) == 8 and len(run.events) < rec.total_epochs
    stopped = [(k, e) for k, e in trials if len(e) < rec.entries[k]["epochs"]]
    assert stopped, "ASHA stopped no trial"
    assert {len(e) for _, e in stopped} <= {1, 3}  # rungs: grace 1, x3
    assert run.optuna_states.get("PRUNED") == len(stopped)
    assert run.optuna_states.get("COMPLETE") == 8 - len(stopped)
    s = replay.run_stats(rec, run, rec.best()[0])
    assert s["stopped_early"] == len(stopped) and s["trial_epochs"] == len(run.events)


@pytest.mark.integration
def test_a_seed_gives_the_same_search_twice_and_budgets_are_prefixes(replayer):
    spec = replay.Spec("tpe", grace=1, rf=2.0)
    first = replayer._run(replayer.resolve(spec), 3, 20)
    again = replayer._run(replayer.resolve(spec), 3, 20)
    assert [e[1:] for e in first.events] == [e[1:] for e in again.events]
    assert len(first.events) == 20  # the budget, exactly
    short = replayer._run(replayer.resolve(spec), 3, 9)
    assert [e[1:] for e in short.events] == [e[1:] for e in first.events[:9]]
    # baselines (as `avspot search` enqueues BASELINES) run first
    based = replayer._run(replayer.resolve(replay.Spec("tpe", baselines=True)), 3, 6)
    assert based.events[0][1] == "fusion=video window_s=20.0"


@pytest.mark.integration
def test_parallel_searches_give_the_same_results(recording, tmp_path, ray_started):
    replay.quiet()
    specs = [(replay.Spec("random", grace=1), 1, 0.25), (replay.Spec("tpe", grace=1), 2, 0.25)]
    a = replay.Replayer(R.load(recording), str(tmp_path / "a"))
    b = replay.Replayer(R.load(recording), str(tmp_path / "b"))
    a.run_all(specs, jobs=1, log=lambda _: None)
    b.run_all(specs, jobs=2, log=lambda _: None)
    for spec, seed, budget in specs:
        ra, rb = a.run(spec, seed, budget), b.run(spec, seed, budget)
        assert [e[1:] for e in ra.events] == [e[1:] for e in rb.events]
        assert ra.optuna_states == rb.optuna_states


@pytest.mark.integration
def test_the_command_line_writes_json_png_and_a_table(recording, ray_started):
    out = io.StringIO()
    with redirect_stdout(out):
        rc = replay.main(
            [str(recording), "--seeds", "1", "--methods", "grid,tpe+asha", "--sweep", "none"]
        )
    assert rc == 0
    text = out.getvalue()
    assert "reproduce:" in text and "tpe+asha" in text and "at 25% median" in text
    result = json.loads(recording.with_name("grid.replay.json").read_text())
    assert recording.with_name("grid.replay.png").stat().st_size > 10_000
    assert [m["method"] for m in result["methods"]] == ["grid", "tpe+asha"]
    grid = result["methods"][0]
    assert grid["seeds"] == 1 and grid["trial_epochs_median"] == 31
    assert grid["found_best"] == 1 and grid["curve"]["median"][-1] == 1.0
    assert result["verdict"]["method"] == "tpe+asha" and "TPE + ASHA found" in text
    assert len(grid["curve"]["median"]) == 32
    assert 0 < grid["per_seed"][0]["at_target_budget"] <= 1
    assert np.all(np.diff(grid["curve"]["median"]) >= 0)  # an anytime curve never drops


@pytest.mark.slow
def test_record_trains_a_tiny_grid_and_resumes(tmp_path):
    record = _load("record")
    out = tmp_path / "rec.json"
    args = ["--preset", "tiny", "--out", str(out), "--axis", "window_s=10.0", "--threads", "1"]
    with redirect_stdout(io.StringIO()):
        assert record.main([*args, "--limit", "1"]) == 0
    assert len(R.load(out).entries) == 1
    text = io.StringIO()
    with redirect_stdout(text):
        assert record.main(args) == 0
    assert "1 of 2 recorded; 1 to go" in text.getvalue() and "complete:" in text.getvalue()
    rec = R.load(out)
    rec.require_complete()
    assert len(rec.header["runs"]) == 2 and rec.header["data"]["source"] == "synthetic"
    assert rec.header["baselines"] == []  # the seed's 20 s window is not in this grid
    entry = next(iter(rec.entries.values()))
    assert entry["epochs"] == 2 and len(entry["epoch_s"]) == 2
    assert set(entry["curves"]) >= {"val_average_map", "val_map", "train_loss"}
    assert entry["train_config"]["monitor"] == "val_average_map"
    assert not R.work_dir(out).exists()
    with redirect_stdout(io.StringIO()):
        assert record.main([*args, "--max-epochs", "3"]) == 2  # another grid: refused
