"""`avspot search`: Ray Tune with Optuna (TPE) and ASHA over a named search space.

The driver validates the inputs, starts (or joins) Ray, opens the MLflow parent run, runs the
Tuner (or restores it with --resume), prints one line per trial-epoch and per finished trial and
a leaderboard, registers the best trial's model as the ``challenger`` and closes the parent run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from avspot.avmodels import names as N
from avspot.avmodels.train_config import TrainConfig
from avspot.datasets.errors import DataError
from avspot.datasets.manifest import Manifest
from avspot.datasets.storage import (
    absolute_uri,
    check_writable_dir,
    patient,
    resolve,
    storage_errors,
)
from avspot.datasets.verify import check_table
from avspot.search.spaces import Space, get_space
from avspot.search.tracking import registry, runs
from avspot.search.tracking.client import get_client, tracking_uri
from avspot.search.tracking.names import TAG_BUILD_ID
from avspot.search.tracking.wheel import build_id
from avspot.search.tuning import resources
from avspot.search.tuning.callbacks import EndStoppedRunsCallback, ProgressCallback
from avspot.search.tuning.leaderboard import best_row, leaderboard, print_leaderboard, totals
from avspot.search.tuning.searcher import build_searcher

Log = Callable[[str], None]  # where the driver's lines go (the command line passes print)

DEFAULT_MAX_EPOCHS = 12
# Per-epoch validation spotting stride of a search. benchmarks/bench_validation.py (synthetic,
# 20 games at SoccerNet's 3:1 train:valid ratio, 12 configurations x 3 epochs): at 4 s validation
# is 26% of a trial-epoch (1 s: 51%) with Spearman 0.995 against full validation over the
# trial-epochs and 0.993 over the trials' best; 6 and 8 s cost the same (25%) with lower
# correlation, since chunk mAP and the loss then dominate validation. The kept epoch is always
# scored again at 1 s (full_val_average_map).
VAL_STRIDE_S = 4.0


@dataclass
class SearchOptions:
    data: str
    space: str
    trials: int | None = None
    max_concurrent: int | None = None
    gpus_per_trial: float = 0.0
    cpus_per_trial: float | None = None  # default 1.0
    experiment: str | None = None
    address: str | None = None
    resume: bool = False
    metric: str = N.DEFAULT_MONITOR
    time_budget_s: float | None = None
    max_epochs: int | None = None
    seed: int = 0
    storage: str | None = None
    endpoint: str | None = None
    tracking: bool = True
    register: bool = True
    # ASHA: the best settings of the tabular replay of the recorded grid
    # (benchmarks/search_replay: grace 2, rf 2 found 100% of the grid's best in 11% of its
    # trial-epochs, median of 10 seeds; grace 1, rf 3 stalled at 97.4%)
    grace_period: int = 2
    reduction_factor: float = 2.0
    fixed: dict[str, Any] = field(default_factory=dict)  # typed values fixed on every trial
    # Per-epoch validation spots at this stride (what ASHA and TPE see); each completed trial's
    # kept epoch is then scored in full, at 1 s (benchmarks/bench_validation.py: same winners).
    val_stride_s: float = VAL_STRIDE_S
    progress: bool = True  # a line per trial-epoch and per finished trial

    @property
    def experiment_name(self) -> str:
        return self.experiment or f"avspot-{self.space}"


@dataclass
class SearchResult:
    experiment: str
    path: str
    rows: list[dict[str, Any]]
    best: dict[str, Any] | None
    trials: int
    trial_epochs: int
    stopped_early: int
    wall_s: float
    parent_run_id: str | None = None
    model_version: str | None = None


def _storage(opts: SearchOptions) -> tuple[str, Any]:
    """Results root (local absolute path or s3 URI) and the pyarrow filesystem for it."""
    if opts.storage and opts.storage.startswith("s3://"):
        fs, path = resolve(opts.storage, endpoint=opts.endpoint)
        with storage_errors(opts.storage, "reaching the results storage"):
            fs.get_file_info(path)  # unreachable from the start: fails within seconds
        return path, patient(opts.storage, opts.endpoint)[0]  # later outages: waited for
    return str(Path(opts.storage or "ray_results").resolve()), None


def _trials(space: Space, opts: SearchOptions) -> int:
    if opts.trials is not None:
        return opts.trials
    return space.grid_size or 24


def base_config(opts: SearchOptions, space: Space, manifest: Manifest | None = None) -> TrainConfig:
    """The config every trial starts from: the search's metric, seed and validation stride,
    the number of epochs (``max_epochs`` fixed on every trial, else the option, else the
    space's default, else 12), resolved here once, and the table's feature widths, label set
    and frame rate. Validated: bad values fail now."""
    max_epochs = (
        opts.fixed.get("max_epochs")
        or opts.max_epochs
        or space.defaults.get("max_epochs")
        or DEFAULT_MAX_EPOCHS
    )
    base = TrainConfig(monitor=opts.metric, seed=opts.seed, val_stride_s=opts.val_stride_s)
    base = base.merge({**opts.fixed, "max_epochs": int(max_epochs)})
    if manifest is None:
        return base
    return base.for_table(
        video_dim=manifest.feature_dims.get("video", 0),
        audio_dim=manifest.feature_dims.get("audio", 0),
        label_set=manifest.label_set,
        fps=manifest.fps,
        given=opts.fixed,
    )


def _validate(opts: SearchOptions) -> tuple[Space, Manifest, TrainConfig]:
    space = get_space(opts.space)
    if opts.metric not in N.MONITORS:
        raise DataError(
            f"metric {opts.metric!r}: expected one of {', '.join(N.MONITORS)}", field="metric"
        )
    if opts.trials is not None and opts.trials < 1:
        raise DataError(f"trials {opts.trials}: must be at least 1", field="trials")
    if opts.gpus_per_trial < 0:
        raise DataError(
            f"gpus_per_trial {opts.gpus_per_trial}: must be >= 0", field="gpus_per_trial"
        )
    if opts.cpus_per_trial is not None and opts.cpus_per_trial <= 0:
        raise DataError(
            f"cpus_per_trial {opts.cpus_per_trial}: must be > 0", field="cpus_per_trial"
        )
    base_config(opts, space)  # unknown keys / bad values: DataError now, before any I/O
    if not opts.address:
        resources.check_local_plan(None, _concurrent(opts), opts.cpus_per_trial)
    manifest = check_table(opts.data, endpoint=opts.endpoint)  # a bad part: refused now
    base = base_config(opts, space, manifest)  # the table's widths, label set and fps
    if opts.tracking:
        get_client()  # a file: URI, an unreachable server: refused before anything is written
    if not (opts.storage or "").startswith("s3://"):
        check_writable_dir(opts.storage or "ray_results", "storage")
    per_split = manifest.counts.get("per_split", {})
    for split in ("train", "valid"):
        if per_split and not per_split.get(split, {}).get("halves"):
            raise DataError(f"{opts.data}: the {split!r} split is empty; a search needs it")
    return space, manifest, base


def feed_plan(manifest: Manifest) -> str:
    """The search's one line about its trials' feed on a machine like this one (each trial logs
    its own choice); DataError now when the split fits neither memory nor the node cache."""
    import shutil

    from avspot.datasets.node_cache import INDEX, cache_root
    from avspot.search.tuning.feed import check_plan

    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    cached = (root / manifest.fingerprint / "train" / INDEX).exists()
    return check_plan(manifest, shutil.disk_usage(root).free, cached=cached)


def _concurrent(opts: SearchOptions) -> int:
    return resources.max_concurrent(opts.max_concurrent, opts.cpus_per_trial)


def run_search(opts: SearchOptions, log: Log = print) -> SearchResult:
    """Run (or resume) a search; returns the leaderboard and where everything is. The
    driver's lines (progress, leaderboard) go to ``log``."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from avspot.search.tuning.trial import TrialContext, train_trial

    t0 = time.perf_counter()
    opts = replace(opts, data=absolute_uri(opts.data))  # trials run in other directories
    space, manifest, base = _validate(opts)
    if not manifest.has_audio and "fusion" not in opts.fixed:
        opts = replace(opts, fixed={**opts.fixed, "fusion": "video"})
        log(f"{opts.data} has no audio features: every trial uses fusion=video")
    log(feed_plan(manifest))  # which feed the trials take here, and why (once)
    root, fs = _storage(opts)
    exp_path = f"{root.rstrip('/')}/{opts.experiment_name}"
    local = fs is None
    if local:
        # Each epoch checkpoints (num_to_keep=2 forces a state snapshot); Tune then warns every
        # few seconds that snapshots may become a bottleneck. On a local disk they take
        # milliseconds: silence it there, keep it for S3, where the warning is worth reading.
        os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    exists = (
        tune.Tuner.can_restore(exp_path, storage_filesystem=fs)
        if not local
        else (Path(exp_path).exists() and tune.Tuner.can_restore(exp_path))
    )
    if opts.resume and not exists:
        raise DataError(f"resume: no search to resume at {exp_path}", field="resume")
    if not opts.resume and exists:
        raise DataError(
            f"{exp_path} already holds a search: resume it, or name another experiment",
            field="resume",
        )
    if local:  # only now: a refused search leaves no directory behind
        Path(root).mkdir(parents=True, exist_ok=True)
    max_epochs = base.max_epochs
    build = build_id()
    machines = 1
    if opts.address:  # a cluster: refuse what its other nodes cannot reach, before any run
        resources.init_ray(opts.address)
        total, machines, head_runs_trials = resources.cluster_layout()
        resources.check_cluster_plan(
            tracking_uri() if opts.tracking else None, opts.storage, machines, head_runs_trials
        )
        if machines > 1:
            resources.check_builds(build)
        concurrent = resources.cluster_concurrent(
            opts.max_concurrent, opts.cpus_per_trial, opts.gpus_per_trial, total
        )
    else:
        concurrent = _concurrent(opts)
    parent_run_id = None
    if opts.tracking:
        parent_run_id, _ = runs.search_parent_run(
            opts.experiment_name,
            params={
                "space": space.name,
                "space_question": space.question,
                "data_uri": opts.data,
                "data_fingerprint": manifest.fingerprint,
                "data_source": manifest.source,
                "trials": _trials(space, opts),
                "max_concurrent": concurrent,
                "max_epochs": max_epochs,
                "metric": opts.metric,
                "time_budget_s": opts.time_budget_s,
                "ray_address": opts.address or "local",
                "seed": opts.seed,
            },
            tags={TAG_BUILD_ID: build},
            resume=opts.resume,
            data_uri=opts.data,
            manifest=manifest,
        )

    resources.init_ray(opts.address)
    ctx = TrialContext(
        base=base,
        data_uri=opts.data,
        metric=opts.metric,
        endpoint=opts.endpoint,
        tracking_uri=tracking_uri() if opts.tracking else None,
        parent_run_id=parent_run_id,
        manifest=manifest,
        fixed={**opts.fixed, "max_epochs": max_epochs},
        threads=resources.trial_threads(opts.address, concurrent, opts.cpus_per_trial),
        build_id=build if machines > 1 else None,  # one machine runs one installation
    )
    trial_resources = {
        "cpu": resources.cpus_per_trial(opts.cpus_per_trial),
        "gpu": opts.gpus_per_trial,
    }
    trainable = tune.with_resources(tune.with_parameters(train_trial, ctx=ctx), trial_resources)
    callbacks: list[Any] = []
    if opts.progress:
        callbacks.append(ProgressCallback(opts.metric, _trials(space, opts), log))
    if parent_run_id is not None:
        callbacks.append(EndStoppedRunsCallback(parent_run_id))

    if opts.resume:
        tuner = tune.Tuner.restore(
            exp_path,
            trainable=trainable,
            resume_unfinished=True,
            resume_errored=True,
            storage_filesystem=fs,
        )
        log(f"resuming {exp_path}")
    else:
        study_path = None
        if local:
            Path(exp_path).mkdir(parents=True, exist_ok=True)
            study_path = str(Path(exp_path) / "optuna.db")
        scheduler = ASHAScheduler(
            time_attr="training_iteration",
            metric=opts.metric,
            mode="max",
            max_t=max_epochs,
            grace_period=min(opts.grace_period, max_epochs),
            reduction_factor=opts.reduction_factor,
        )
        searcher = build_searcher(
            space,
            trials=_trials(space, opts),
            seed=opts.seed,
            metric=opts.metric,
            study_name=opts.experiment_name,
            study_path=study_path,
            max_concurrent=concurrent,
        )
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=scheduler,
                num_samples=_trials(space, opts),
                time_budget_s=opts.time_budget_s,
            ),
            run_config=tune.RunConfig(
                name=opts.experiment_name,
                storage_path=root,
                storage_filesystem=fs,
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                failure_config=tune.FailureConfig(max_failures=2),
                callbacks=callbacks,
                verbose=0,
            ),
        )
    grid = tuner.fit()
    result = _leaderboard(grid, opts, exp_path, time.perf_counter() - t0)
    result.parent_run_id = parent_run_id
    if parent_run_id is not None:
        runs.wait_for_server()  # a tracking outage at the end of a search is waited for
        if opts.register and result.best is not None:
            result.model_version = registry.register_best(
                result.experiment,
                parent_run_id,
                manifest.fingerprint,
                best_trial_id=result.best.get("trial_id"),
                metric=opts.metric,
            )
        from avspot.search.reporting.analysis import log_search_analysis

        for line in log_search_analysis(parent_run_id):  # compute totals, analysis/ artifacts
            log(line)
        runs.finish_search_run(
            parent_run_id,
            "FINISHED" if result.best is not None else "FAILED",
            metrics={
                "trials": result.trials,
                "trial_epochs": result.trial_epochs,
                "stopped_early": result.stopped_early,
                "wall_s": result.wall_s,
                "best_value": result.best["best"] if result.best else None,
            },
            tags={"avspot.challenger_version": result.model_version}
            if result.model_version
            else None,
        )
    _print_leaderboard(result, opts, log)
    return result


def _leaderboard(grid: Any, opts: SearchOptions, path: str, wall_s: float) -> SearchResult:
    rows = leaderboard(grid, opts.metric)  # each trial's last report (tuning.leaderboard)
    return SearchResult(
        experiment=opts.experiment_name,
        path=path,
        rows=rows,
        best=best_row(rows),
        **totals(rows),
        wall_s=wall_s,
    )


def _print_leaderboard(result: SearchResult, opts: SearchOptions, log: Log) -> None:
    print_leaderboard(
        result, opts.metric, log, tracking_uri=tracking_uri() if result.parent_run_id else None
    )
