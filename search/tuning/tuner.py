"""`avspot search`: Ray Tune with Optuna (TPE) and ASHA over a named search space.

The driver validates the inputs, starts (or joins) Ray, opens the MLflow parent run, runs the
Tuner (or restores it with --resume), prints one line per finished trial and a leaderboard, and
registers the best trial's model as the `challenger`.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avspot.datasets.errors import DataError

DEFAULT_MAX_EPOCHS = 12
# Summary columns shown for a trial, in this order, when the config has them.
_SUMMARY_KEYS = ("fusion", "pooling", "clusters", "window_s", "dropout", "lr", "schedule")


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
    metric: str = "val_average_map"
    time_budget_s: float | None = None
    max_epochs: int | None = None
    seed: int = 0
    storage: str | None = None
    endpoint: str | None = None
    tracking: bool = True
    register: bool = True
    grace_period: int = 1
    reduction_factor: float = 3.0
    fixed: dict[str, str] = field(default_factory=dict)  # `--set` overrides on every trial
    out: Any = field(default=sys.stdout, repr=False)

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


def _summary(config: dict[str, Any]) -> str:
    parts = []
    for key in _SUMMARY_KEYS:
        if key in config:
            v = config[key]
            if key == "clusters" and config.get("pooling") not in (
                "softdbow",
                "netfv",
                "netvlad",
                "netrvlad",
            ):
                continue
            parts.append(f"{key}={v:.3g}" if isinstance(v, float) else f"{key}={v}")
    return " ".join(parts)


def _storage(opts: SearchOptions) -> tuple[str, Any]:
    """Results root (local absolute path or s3 URI) and the pyarrow filesystem for it."""
    if opts.storage and opts.storage.startswith("s3://"):
        from avspot.datasets.table import resolve

        fs, path = resolve(opts.storage, endpoint=opts.endpoint)
        return path, fs
    return str(Path(opts.storage or "ray_results").resolve()), None


class _Progress:
    """Tune callback printing one line per finished trial."""

    def __new__(cls, *args: Any, **kwargs: Any):  # built lazily: ray.tune.Callback subclass
        from ray import tune

        class Progress(tune.Callback):
            def __init__(self, metric: str, total: int | None, out: Any) -> None:
                self.metric, self.total, self.out, self.done = metric, total, out, 0
                self.best: dict[str, float] = {}

            def on_trial_result(
                self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
            ):
                value = result.get(self.metric)
                if isinstance(value, int | float):
                    self.best[trial.trial_id] = max(value, self.best.get(trial.trial_id, value))

            def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any):
                self.done += 1
                r = trial.last_result or {}
                epochs = int(r.get("training_iteration", 0))
                how = "completed" if r.get("finished") else "stopped early (ASHA)"
                value = r.get(self.metric, float("nan"))
                best = self.best.get(trial.trial_id, value)
                total = f"/{self.total}" if self.total else ""
                print(
                    f"trial {self.done}{total} {trial.trial_id}: {_summary(trial.config)} | "
                    f"{self.metric}={value:.4f} (best {best:.4f}) | {epochs} epochs, {how}",
                    file=self.out,
                    flush=True,
                )

            def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any):
                print(f"trial {trial.trial_id} FAILED: {_summary(trial.config)}", file=self.out)

        return Progress(*args, **kwargs)


def _searcher(space, opts: SearchOptions, study_path: str | None):
    import optuna
    from ray.tune.search import ConcurrencyLimiter

    from avspot.search.optuna_search import AvspotOptunaSearch, SpaceFunction

    if space.grid is not None:
        sampler = optuna.samplers.GridSampler(space.grid, seed=opts.seed)
    else:
        # Random start-up trials first (a third of the budget, 2..10), then multivariate TPE;
        # constant_liar keeps concurrent trials from piling onto the same point.
        sampler = optuna.samplers.TPESampler(
            seed=opts.seed,
            n_startup_trials=min(10, max(2, _trials(space, opts) // 3)),
            multivariate=True,
            group=True,
            constant_liar=True,
        )
    storage = None
    if study_path is not None:
        storage = optuna.storages.RDBStorage(f"sqlite:///{study_path}")
    searcher = AvspotOptunaSearch(
        space=SpaceFunction(space.name),
        sampler=sampler,
        storage=storage,
        study_name=opts.experiment_name,
        metric=opts.metric,
        mode="max",
        # A space's reference points run first (enqueued in the study, so a resume keeps them).
        points_to_evaluate=list(space.baselines) if space.grid is None else None,
    )
    return ConcurrencyLimiter(searcher, max_concurrent=_max_concurrent(opts))


def _trials(space, opts: SearchOptions) -> int:
    if opts.trials is not None:
        return opts.trials
    return space.grid_size or 24


# CPUs that Ray Data needs free beside the trials: with less, its read and windowing tasks never
# get scheduled and every trial waits for its first batch forever (seen on 2 CPUs with 2 trials
# of 1 CPU, and with 1 trial of 1.5 CPUs).
DATA_CPUS = 1.0


def _max_concurrent(opts: SearchOptions) -> int:
    if opts.max_concurrent is not None:
        return opts.max_concurrent
    cpus = os.cpu_count() or 1
    return max(1, int((cpus - DATA_CPUS) // (opts.cpus_per_trial or 1.0)))


def _cpus_per_trial(opts: SearchOptions) -> float:
    return opts.cpus_per_trial if opts.cpus_per_trial is not None else 1.0


def _trial_threads(opts: SearchOptions) -> int:
    """Torch threads per trial on local Ray: the machine's CPUs shared by the concurrent trials.

    The CPU kept for Ray Data is busy only while a trial reads its epoch (which starts during
    the previous epoch's validation, see ``RayTrainStream``); during training and validation
    the trials use it too (2 threads for 1 trial on 2 CPUs: 1.4-1.6x faster epochs). On a
    cluster (``--address``) a trial uses the CPUs it was given.
    """
    if opts.address:
        return 0
    cpus = os.cpu_count() or 1
    return max(1, math.ceil(_cpus_per_trial(opts)), cpus // max(1, _max_concurrent(opts)))


def _check_local_resources(opts: SearchOptions) -> None:
    """On local Ray, refuse a plan that leaves Ray Data no CPU (the search would hang)."""
    if opts.address:
        return
    cpus = os.cpu_count() or 1
    need = _max_concurrent(opts) * _cpus_per_trial(opts)
    if need > cpus - DATA_CPUS and cpus > DATA_CPUS:
        raise DataError(
            f"--max-concurrent {_max_concurrent(opts)} x --cpus-per-trial {_cpus_per_trial(opts):g} "
            f"leaves less than {DATA_CPUS:g} of this machine's {cpus} CPUs for Ray Data's read "
            "tasks: the trials would wait for data forever; lower one of them"
        )


def _init_ray(opts: SearchOptions) -> None:
    import ray

    if ray.is_initialized():
        return
    if opts.address:
        ray.init(address=opts.address, log_to_driver=False)
    else:
        ray.init(
            num_cpus=os.cpu_count(),
            object_store_memory=int(os.environ.get("AVSPOT_OBJECT_STORE_BYTES", 1 << 30)),
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )


def _validate(opts: SearchOptions):
    from avspot.datasets.table import read_manifest
    from avspot.search.spaces import get_space

    space = get_space(opts.space)
    if opts.metric not in ("val_average_map", "val_map"):
        raise DataError(f"--metric {opts.metric!r}: expected val_average_map or val_map")
    if opts.trials is not None and opts.trials < 1:
        raise DataError(f"--trials {opts.trials}: must be at least 1")
    if opts.gpus_per_trial < 0 or (opts.cpus_per_trial is not None and opts.cpus_per_trial <= 0):
        raise DataError("--gpus-per-trial must be >= 0 and --cpus-per-trial > 0")
    if opts.fixed:
        from avspot.avmodels.trainer import TrainConfig

        TrainConfig.from_overrides(dict(opts.fixed))  # unknown keys / bad values: DataError now
    _check_local_resources(opts)
    manifest = read_manifest(opts.data, endpoint=opts.endpoint)
    per_split = manifest.counts.get("per_split", {})
    for split in ("train", "valid"):
        if per_split and not per_split.get(split, {}).get("halves"):
            raise DataError(f"{opts.data}: the {split!r} split is empty; a search needs it")
    return space, manifest


def run_search(opts: SearchOptions) -> SearchResult:
    """Run (or resume) a search; returns the leaderboard and where everything is."""
    from ray import tune

    from avspot.search.trainable import TrialContext, train_trial

    t0 = time.perf_counter()
    space, manifest = _validate(opts)
    root, fs = _storage(opts)
    exp_path = f"{root.rstrip('/')}/{opts.experiment_name}"
    local = fs is None
    if local:
        Path(root).mkdir(parents=True, exist_ok=True)
    exists = (
        tune.Tuner.can_restore(exp_path, storage_filesystem=fs)
        if not local
        else (Path(exp_path).exists() and tune.Tuner.can_restore(exp_path))
    )
    if opts.resume and not exists:
        raise DataError(f"--resume: no search to resume at {exp_path}")
    if not opts.resume and exists:
        raise DataError(
            f"{exp_path} already holds a search; pass --resume to continue it "
            "or --experiment NAME for a new one"
        )

    tracking = None
    parent_run_id = experiment_id = None
    if opts.tracking:
        from avspot.search import tracking

        parent_run_id, experiment_id = tracking.search_parent_run(
            opts.experiment_name,
            params={
                "space": space.name,
                "space_question": space.question,
                "data_uri": opts.data,
                "data_fingerprint": manifest.fingerprint,
                "data_source": manifest.source,
                "trials": _trials(space, opts),
                "max_concurrent": _max_concurrent(opts),
                "max_epochs": opts.max_epochs
                or space.defaults.get("max_epochs", DEFAULT_MAX_EPOCHS),
                "metric": opts.metric,
                "time_budget_s": opts.time_budget_s,
                "ray_address": opts.address or "local",
                "seed": opts.seed,
            },
            resume=opts.resume,
        )

    _init_ray(opts)
    max_epochs = opts.max_epochs or int(space.defaults.get("max_epochs", DEFAULT_MAX_EPOCHS))
    ctx = TrialContext(
        data_uri=opts.data,
        endpoint=opts.endpoint,
        metric=opts.metric,
        max_epochs=max_epochs,
        tracking_uri=tracking.tracking_uri() if tracking else None,
        experiment_id=experiment_id,
        parent_run_id=parent_run_id,
        seed=opts.seed,
        fixed=dict(opts.fixed),
        threads=_trial_threads(opts),
    )
    resources = {"cpu": _cpus_per_trial(opts), "gpu": opts.gpus_per_trial}
    trainable = tune.with_resources(tune.with_parameters(train_trial, ctx=ctx), resources)
    callbacks = [_Progress(opts.metric, _trials(space, opts), opts.out)]
    if opts.tracking:
        from avspot.search.tracking import KillStoppedRunsCallback

        callbacks.append(KillStoppedRunsCallback())

    if opts.resume:
        tuner = tune.Tuner.restore(
            exp_path,
            trainable=trainable,
            resume_unfinished=True,
            resume_errored=True,
            storage_filesystem=fs,
        )
        print(f"resuming {exp_path}", file=opts.out, flush=True)
    else:
        study_path = None
        if local:
            Path(exp_path).mkdir(parents=True, exist_ok=True)
            study_path = str(Path(exp_path) / "optuna.db")
        from ray.tune.schedulers import ASHAScheduler

        scheduler = ASHAScheduler(
            time_attr="training_iteration",
            metric=opts.metric,
            mode="max",
            max_t=max_epochs,
            grace_period=min(opts.grace_period, max_epochs),
            reduction_factor=opts.reduction_factor,
        )
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=_searcher(space, opts, study_path),
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
    if opts.tracking:
        from avspot.search import tracking

        if opts.register and result.best is not None:
            result.model_version = tracking.register_best(result, manifest)
        tracking.finish_search_run(parent_run_id, result)
    _print_leaderboard(result, opts)
    return result


def _leaderboard(grid: Any, opts: SearchOptions, path: str, wall_s: float) -> SearchResult:
    rows = []
    for res in grid:
        m = res.metrics or {}
        hist = res.metrics_dataframe
        best = float("nan")
        if hist is not None and opts.metric in hist:
            best = float(hist[opts.metric].max())
        rows.append(
            {
                "trial_id": m.get("trial_id"),
                "config": dict(res.config or {}),
                "best": best,
                "epochs": int(m.get("training_iteration", 0)),
                "finished": bool(m.get("finished", 0)),
                "error": res.error is not None,
                "last": {k: v for k, v in m.items() if isinstance(v, int | float)},
                "path": res.path,
            }
        )
    rows.sort(key=lambda r: -(r["best"] if not math.isnan(r["best"]) else -1.0))
    ok = [r for r in rows if not math.isnan(r["best"])]
    return SearchResult(
        experiment=opts.experiment_name,
        path=path,
        rows=rows,
        best=ok[0] if ok else None,
        trials=len(rows),
        trial_epochs=sum(r["epochs"] for r in rows),
        stopped_early=sum(1 for r in rows if not r["finished"] and not r["error"]),
        wall_s=wall_s,
    )


def _print_leaderboard(result: SearchResult, opts: SearchOptions) -> None:
    out = opts.out
    print(
        f"\n{result.trials} trials, {result.trial_epochs} trial-epochs, "
        f"{result.stopped_early} stopped early by ASHA, {result.wall_s / 60:.1f} min",
        file=out,
    )
    print(f"{'rank':>4}  {opts.metric:>15}  {'epochs':>6}  config", file=out)
    for i, r in enumerate(result.rows[:15], 1):
        flag = " (error)" if r["error"] else ""
        print(
            f"{i:>4}  {r['best']:>15.4f}  {r['epochs']:>6}  {_summary(r['config'])}{flag}", file=out
        )
    print(f"\nresults: {result.path}", file=out)
    if result.parent_run_id:
        from avspot.search.tracking import tracking_uri

        print(f"MLflow: parent run {result.parent_run_id} in {tracking_uri()}", file=out)
        if result.model_version:
            print(
                f"registered avspot-spotter version {result.model_version} as @challenger", file=out
            )
    print(file=out, flush=True)


def _parse_sets(pairs: list[str]) -> dict[str, str]:
    from avspot.search.cli import _parse_sets as parse

    return parse(pairs)


def run_search_cli(args: argparse.Namespace) -> int:
    opts = SearchOptions(
        data=args.data,
        space=args.space,
        trials=args.trials,
        max_concurrent=args.max_concurrent,
        gpus_per_trial=args.gpus_per_trial,
        cpus_per_trial=args.cpus_per_trial,
        experiment=args.experiment,
        address=args.address,
        resume=args.resume,
        metric=args.metric,
        time_budget_s=args.time_budget_s,
        max_epochs=args.max_epochs,
        seed=args.seed,
        storage=args.storage,
        endpoint=args.endpoint_url,
        fixed=_parse_sets(args.set),
    )
    result = run_search(opts)
    return 0 if result.best is not None else 1
