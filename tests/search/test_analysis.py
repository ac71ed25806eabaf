"""Does the search pay off, and where should audio join video? Compute accounting, the Optuna
study rebuilt from MLflow (importance, ASHA-stopped trials), the figures, the fusion x modality
table and the report's new sections, on a sqlite store filled by scripted trials."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from avspot.search.cli.main import main as cli_main
from avspot.search.reporting import analysis, figures, study
from avspot.search.reporting.compute import log_compute
from avspot.search.reporting.fusion_table import fusion_table
from avspot.search.reporting.trials import collect
from avspot.search.tracking import names
from avspot.search.tracking.client import get_client, log_metrics
from avspot.search.tracking.runs import finish_search_run, start_search_run
from avspot.search.tracking.trial import TrialRun
from tests.support import testing as F

PNG = b"\x89PNG"
SYNTHETIC_NOTE = "SYNTHETIC data (avspot data synth), not SoccerNet"
# the search figures' file names (README's docs/img/report_<name>.png); no trial here logs
# spot_s_per_half, so the Pareto front is the one against parameters
ANALYSIS_FIGURES = (
    "parallel_coordinates",
    "intermediate_values",
    "pareto_front_n_params",
    "param_importance",
)
QUALITY = {"video": 0.45, "audio": 0.3, "before_fc": 0.7, "early_512": 0.55}
# (fusion, pooling, window_s, lr, stopped after this many epochs or None)
CONFIGS = [
    ("video", "max", 4.0, 1e-3, None),
    ("audio", "max", 4.0, 3e-3, 1),
    ("before_fc", "netvlad", 4.0, 1e-2, None),
    ("early_512", "max", 8.0, 1e-4, 2),
    ("before_fc", "max", 8.0, 3e-4, None),
    ("video", "netvlad", 8.0, 3e-3, 1),
    ("audio", "netvlad", 4.0, 1e-3, None),
    ("early_512", "netvlad", 4.0, 1e-2, None),
]


def _search(experiment: str, *, seed: int = 0, space: str = "fusion", configs=CONFIGS) -> str:
    parent = start_search_run(
        experiment,
        {"space": space, "metric": "val_average_map", "max_epochs": 4, "seed": seed},
        data_uri="/d",
        manifest=F.tiny_manifest("c" * 64),
    )
    for i, (fusion, pooling, window, lr, stop) in enumerate(configs):
        cfg = F.tiny_train_config(fusion, window_s=window, pooling=pooling, clusters=4)
        cfg = dataclasses.replace(cfg, lr=lr, seed=seed)
        cb = TrialRun(
            parent,
            cfg.to_dict(),
            f"s{seed}t{i}",
            trial_id=f"{seed}_{i}",
            log_model=False,
            log_plots=False,
            cpus=2.0,
            gpus=0.5,
        )
        quality = QUALITY[fusion] + 0.02 * seed + (0.05 if pooling == "netvlad" else 0.0)
        F.run_fake_trial(cb, cfg, epochs=4, quality=quality, seed=i, stop_after=stop)
        if stop is not None:
            cb.client.set_terminated(cb.run_id, "KILLED")  # what the driver does after ASHA
    return parent


def _scored(experiment: str) -> list[study.Scored]:
    client = get_client()
    _, trials, monitor = collect(client, experiment)
    return study.score_trials(client, trials, monitor)


def test_trials_log_cost_every_epoch_and_inference_cost(store: str) -> None:
    parent = _search("exp", configs=CONFIGS[:2])
    client = get_client()
    runs = {
        r.info.run_name: r for r in client.search_runs([client.get_run(parent).info.experiment_id])
    }
    stopped, done = runs["s0t1"], runs["s0t0"]
    hist = client.get_metric_history(stopped.info.run_id, names.M_CPU_CORE_S)
    assert [h.step for h in hist] == [1]  # an ASHA-stopped trial has its cost already
    for run in (stopped, done):
        m = run.data.metrics
        assert m[names.M_CPU_CORE_S] == pytest.approx(2 * m[names.M_TRIAL_WALL_S])
        assert m[names.M_GPU_S] == pytest.approx(0.5 * m[names.M_TRIAL_WALL_S])
    steps = [h.step for h in client.get_metric_history(done.info.run_id, names.M_TRIAL_WALL_S)]
    assert steps[:4] == [1, 2, 3, 4]  # cumulative per epoch, then once more when closed
    assert done.data.metrics[names.M_N_PARAMS] > 0


def test_a_restarted_trial_adds_to_the_cost_it_logged_before(store: str) -> None:
    parent = start_search_run("exp", {"space": "fusion"})
    cfg = F.tiny_train_config()
    first = TrialRun(parent, cfg.to_dict(), "t0", trial_id="t0", log_model=False)
    F.run_fake_trial(first, cfg, stop_after=2)  # the process dies after epoch 2
    client = get_client()
    before = client.get_run(first.run_id).data.metrics[names.M_CPU_CORE_S]
    again = TrialRun(parent, cfg.to_dict(), "t0", trial_id="t0", log_model=False, log_plots=False)
    assert again.run_id == first.run_id and again.logged_through == 2
    F.run_fake_trial(again, cfg)  # resumed: epochs 1-2 are skipped, 3-4 logged
    hist = client.get_metric_history(first.run_id, names.M_CPU_CORE_S)
    assert [h.step for h in hist][:3] == [1, 2, 3] and hist[2].value > before


def test_spotting_time_per_half_is_logged(store: str) -> None:
    parent = start_search_run("exp", {"space": "smoke"})
    cfg = F.tiny_train_config()
    cb = TrialRun(
        parent,
        cfg.to_dict(),
        "t0",
        log_model=False,
        log_plots=False,
    )
    F.run_fake_trial(cb, cfg, valid_halves=F.tiny_halves(2, split="valid"), timelines=0)
    m = get_client().get_run(cb.run_id).data.metrics
    assert 0 < m[names.M_SPOT_S_PER_HALF] < 10 and "val_average_map_nms" in m


def _child(client, parent: str, exp_id: str, i: int, wall: list[float]) -> None:
    run = client.create_run(exp_id, tags={names.TAG_PARENT: parent, names.TAG_TRIAL_ID: f"t{i}"})
    for epoch, w in enumerate(wall, 1):
        log_metrics(client, run.info.run_id, {"val_average_map": 0.1 * epoch}, step=epoch)
        log_metrics(
            client,
            run.info.run_id,
            {names.M_TRIAL_WALL_S: w, names.M_CPU_CORE_S: 2 * w, names.M_GPU_S: 0.0},
            step=epoch,
        )
    client.set_terminated(run.info.run_id, "KILLED" if len(wall) < 3 else "FINISHED")


@pytest.mark.parametrize(
    ("space", "basis", "estimate_trials"), [("smoke", "grid", 4), ("fusion", "tpe", 3)]
)
def test_compute_totals_and_the_full_search_estimate(
    store: str, space: str, basis: str, estimate_trials: int
) -> None:
    client = get_client()
    parent = start_search_run("exp", {"space": space, "max_epochs": 3, "metric": "val_average_map"})
    exp_id = client.get_run(parent).info.experiment_id
    _child(client, parent, exp_id, 0, [10.0, 20.0, 30.0])  # 3 epochs, 30 s
    _child(client, parent, exp_id, 1, [10.0])  # stopped after 1 epoch, 10 s
    _child(client, parent, exp_id, 2, [10.0, 20.0])  # stopped after 2 epochs, 20 s
    totals = log_compute(client, parent)
    assert (totals.trials, totals.trial_epochs, totals.basis) == (3, 6, basis)
    assert totals.wall_s == 60 and totals.cpu_core_s == 120
    m = client.get_run(parent).data.metrics
    est_epochs = estimate_trials * 3
    assert m[names.M_GRID_TRIAL_EPOCHS] == est_epochs
    assert m[names.M_TOTAL_CPU_CORE_H] == pytest.approx(120 / 3600)
    assert m[names.M_GRID_CPU_CORE_H] == pytest.approx(120 / 6 * est_epochs / 3600)
    assert m[names.M_SAVED_FRACTION] == pytest.approx(1 - 6 / est_epochs)
    assert m[names.M_TOTAL_GPU_H] == 0
    tag = client.get_run(parent).data.tags[names.TAG_GRID_BASIS]
    assert tag.startswith(f"{basis}: {estimate_trials} ")
    assert "CPU-core h" in "\n".join(totals.lines())


def test_study_from_mlflow_handles_stopped_trials_explicitly(store: str) -> None:
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.trial import TrialState

    _search("exp")
    scored = _scored("exp")
    params = study.searched_params(scored)
    assert params[:4] == ["fusion", "pooling", "clusters", "window_s"] and "lr" in params
    assert "seed" not in params and "clusters" in params  # conditional: netvlad only
    by_run = {s.trial.name: s for s in scored}
    assert by_run["s0t1"].state == "stopped" and by_run["s0t1"].curve[-1][0] == 1
    assert by_run["s0t0"].score == max(v for _, v in by_run["s0t0"].curve)

    with_stopped = study.build_study(scored, params, include_stopped=True)
    completed = study.build_study(scored, params, include_stopped=False)
    states = [t.state for t in completed.trials]
    assert states.count(TrialState.PRUNED) == 3 and states.count(TrialState.COMPLETE) == 5
    assert all(t.state == TrialState.COMPLETE for t in with_stopped.trials)
    pruned = next(t for t in completed.trials if t.state == TrialState.PRUNED)
    assert pruned.intermediate_values  # its curve, as the search's own optuna.db keeps it
    d = with_stopped.trials[0].distributions
    assert isinstance(d["fusion"], CategoricalDistribution)
    assert list(d["fusion"].choices) == ["video", "audio", "before_fc", "early_512"]
    assert isinstance(d["lr"], FloatDistribution) and d["lr"].log

    imp = study.param_importance(scored)
    assert imp["counts"] == {"completed": 5, "stopped": 3, "failed": 0}
    assert set(imp["results"]) == {"fANOVA, all trials", "fANOVA, completed only"}
    top = max(imp["results"]["fANOVA, all trials"].items(), key=lambda kv: kv[1])
    assert top[0] == "fusion"  # the quality of the scripted trials depends on it most
    assert imp["conditional"] == ["clusters"]


def test_pareto_mask() -> None:
    costs = [1.0, 2.0, 3.0, 2.0, 0.5]
    values = [0.5, 0.7, 0.6, 0.4, 0.5]
    assert study.pareto_mask(costs, values) == [False, True, False, False, True]


def test_figures_and_fusion_table_over_seeds(store: str, tmp_path: Path, monkeypatch) -> None:
    for seed in (0, 1, 2):
        _search("exp", seed=seed, configs=CONFIGS[:6])
    client = get_client()
    parents, trials, monitor = collect(client, "exp")
    by_id = {p.info.run_id: p for p in parents}
    md, data = fusion_table(trials, by_id)
    table = data["fusion"]
    assert table["seeds"] == ["0", "1", "2"]
    assert list(table["rows"]) == ["video", "audio", "before_fc", "early_512"]  # registry order
    assert len(table["rows"]["before_fc"]["best"]) == 3  # one best per seed
    assert "Merging method 4 (before the FC layer) (`before_fc`)" in md
    assert "3 seeds (0, 1, 2)" in md and "–" in md  # median (min–max)

    scored = study.score_trials(client, trials, monitor)
    imp = study.param_importance(scored)
    notes: list[tuple[object, str | None]] = []
    real_note = figures.add_data_note
    monkeypatch.setattr(
        figures, "add_data_note", lambda fig, src: notes.append((fig, src)) or real_note(fig, src)
    )
    figs = figures.search_figures(
        scored, monitor, tmp_path, max_epochs=4, source="synthetic", importance=imp
    )
    stems = {Path(name).stem for name in figs.values()}
    assert stems == {
        "param_importance",  # stopped trials at their best value
        "param_importance_completed",  # completed trials only
        "parallel_coordinates",
        "intermediate_values",
        "pareto_front_n_params",  # no trial here logged spot_s_per_half (pareto_front.png)
    }
    for name in figs.values():
        assert (tmp_path / name).read_bytes().startswith(PNG)
    assert len(notes) == len(figs) and {src for _, src in notes} == {"synthetic"}
    for fig, _ in notes:  # Optuna's own figure, with the note on it
        assert SYNTHETIC_NOTE in [t.get_text() for t in fig.texts]
    front = study.pareto(scored)
    assert front[names.M_N_PARAMS] and any(p["front"] for p in front[names.M_N_PARAMS])
    assert all(p["run"] != "s0t1" for p in front[names.M_N_PARAMS])  # stopped: no final model


def test_search_end_logs_totals_and_analysis_artifacts(store: str) -> None:
    parent = _search("exp")
    lines = analysis.log_search_analysis(parent)
    assert lines and "CPU-core h" in lines[0] and not any("failed" in x for x in lines)
    client = get_client()
    m = client.get_run(parent).data.metrics
    for key in (names.M_TOTAL_CPU_CORE_H, names.M_TOTAL_GPU_H, names.M_TOTAL_WALL_H):
        assert m[key] > 0
    assert 0 < m[names.M_SAVED_FRACTION] < 1  # 3 of 8 trials stopped early
    exp_id = client.get_run(parent).info.experiment_id
    stopped = client.search_runs([exp_id], "attributes.run_name = 's0t3'")[0]  # after 2 epochs
    assert stopped.info.status == "KILLED" and stopped.data.metrics["epochs"] == 2
    hist = client.get_metric_history(stopped.info.run_id, "val_average_map")
    assert stopped.data.metrics["best_val_average_map"] == max(h.value for h in hist)
    _, trials, _ = collect(client, "exp")  # still read as a stopped trial, from its history
    t3 = next(t for t in trials if t.name == "s0t3")
    assert t3.epochs == 2 and t3.metrics["val_map"] == next(
        h.value for h in client.get_metric_history(t3.run_id, "val_map") if h.step == 2
    )
    logged = {a.path for a in client.list_artifacts(parent, names.ANALYSIS_DIR)}
    pngs = [f"{f}.png" for f in (*ANALYSIS_FIGURES, "param_importance_completed")]
    for name in ("analysis.md", "analysis.json", *pngs):
        assert f"{names.ANALYSIS_DIR}/{name}" in logged, name
    import mlflow

    data = mlflow.artifacts.load_dict(f"runs:/{parent}/{names.ANALYSIS_DIR}/analysis.json")
    assert data["importance"]["counts"]["stopped"] == 3
    assert data["compute"]["basis"] == "tpe" and data["fusion_table"]["fusion"]["rows"]


def test_report_has_the_new_sections_and_figures(store: str, tmp_path: Path, capsys) -> None:
    for seed in (0, 1):
        parent = _search("exp", seed=seed, configs=CONFIGS[:6])
        finish_search_run(parent)
    out = tmp_path / "report"
    assert cli_main(["report", "--experiment", "exp", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("CPU-core h") >= 2 and "saved" in printed
    md = (out / "report.md").read_text()
    for heading in (
        "## Does the search pay off? Compute",
        "### Where should audio join video? Fusion point x modality",
        "### Parameter importance",
        "### Parallel coordinates of the searched parameters",
        "### Intermediate values",
        "### Pareto front",
    ):
        assert heading in md, heading
    assert "stopped early by ASHA" in md and "PRUNED" in md
    assert "2 seeds (0, 1)" in md
    for name in ANALYSIS_FIGURES:
        assert (out / "figures" / f"{name}.png").read_bytes().startswith(PNG)
        assert f"figures/{name}.png" in md
    summary = json.loads((out / "report.json").read_text())
    assert len(summary["compute"]) == 2
    assert summary["datasets"][0]["importance"]["counts"]["stopped"] == 6
    assert not math.isnan(summary["compute"][0][names.M_SAVED_FRACTION])
