"""Replay search methods over a recorded grid through the real Ray Tune, Optuna and ASHA code.

    .venv/bin/python benchmarks/search_replay/replay.py benchmarks/search_replay/grid_cpu.json
    .venv/bin/python benchmarks/search_replay/replay.py REC.json --seeds 3 --sweep none
    .venv/bin/python benchmarks/search_replay/replay.py REC.json --methods tpe+asha --jobs 4

No training: a Tune function trainable looks its configuration up in the recording (exactly, by
its axis labels) and ``tune.report``s the recorded epochs one by one (``val_average_map``,
``val_map``, ``train_loss``, ``epoch``, ``epoch_time_s``; ``finished=1.0`` on its last epoch, as
the real trial does), so that ``ASHAScheduler`` and the searcher see what they would see in a
real search. The searcher is the project's ``AvspotOptunaSearch`` (ASHA-stopped trials reach
Optuna as PRUNED) over a define-by-run space with one categorical per recorded axis, inside a
``ConcurrencyLimiter(max_concurrent=1)`` as ``avspot search`` builds it on a 2-CPU machine;
ASHA has the settings of ``search/tuning/tuner.py`` (``training_iteration``, ``max_t`` = the
recording's epochs, the search's default grace period and reduction factor unless swept). TPE and ASHA are not re-implemented.

Methods (each over ``--seeds`` seeds 0..N-1; the seed goes to the Optuna sampler):

- ``grid``: Optuna's GridSampler (the order ``avspot search --space paper`` uses: a seeded random
  order of the grid), every configuration to its last epoch.
- ``random``: RandomSampler; ``tpe``: TPESampler with the settings of ``avspot search``
  (multivariate, group, constant_liar; ``n_startup_trials`` = min(10, max(2, trials // 3)) with
  trials = the grid's size, as if the search had as many trials as the grid).
- ``random+asha``, ``tpe+asha``, ``grid+asha`` (= ``avspot search --space paper``): the same
  with ASHA; ``tpe+asha+baselines`` (by default when the recording lists ``baselines``): the
  header's baseline points first, as ``avspot search --space fusion`` enqueues its BASELINES.
- sweeps on ``tpe+asha`` (``--sweep``): ASHA grace period 1/2/3 x reduction factor 2/3/4, and
  TPE start-up trials 2/5/10, up to ``--sweep-budget`` of the grid's trial-epochs; the best
  setting is the one with the highest median fraction at 25 % (then mean, then lower quartile).

Exact semantics: trials run one at a time (the searcher suggests the next configuration after
the previous trial ended and was told to Optuna), which is what ``avspot search`` does on this
2-CPU machine (one CPU is kept for Ray Data) and what ASHA's asynchronous rungs see in that
case; random and TPE may pick a configuration again (they do in a real search too). A search
ends at the first result past ``--budget`` x the grid's trial-epochs (a Tune Stopper; that
result is dropped) or when the sampler has no trials left (grid: all configurations suggested).
Its first N trial-epochs do not depend on when it will stop, so a longer run also answers every
shorter budget (the sweeps reuse the main runs where they coincide). Trial-epochs count the
epochs that trials reported (an ASHA-stopped trial only its own).

Output: per method the anytime curve (best validation Average-mAP found so far as a fraction of
the grid's best, over trial-epochs spent as a fraction of the grid's total; median and
interquartile range over seeds), the fraction after 25 % of the grid's trial-epochs (median
over seeds) and whether it reaches the target (>= 99 %); the best ASHA and TPE settings. Writes
``NAME.replay.json`` and ``NAME.replay.png`` next to the recording ``NAME.json`` and prints a
table, the verdict for TPE + ASHA and the command that reproduces it.

Speed: Ray starts once; trials reuse their actor (``reuse_actors=True``: without it Tune spends
~1.1 s per trial starting an actor, with it 20-30 ms; the trainable is a pure function of its
config, so reuse changes nothing the searcher or ASHA see); results are reported instantly.
Each search still costs ~1.2 s to set up (its first trial's actor); ``--jobs N`` runs N searches
at a time, each driven by its own Tune in a Ray task (each one's trials still one at a time:
the same results as ``--jobs 1``, which a test checks). Measured on this 2-core machine: an
8 x 4 recording, 10 seeds x the 7 methods (70 searches): 96 s; a 4 x 2 recording with both
sweeps too (170 searches): 410 s with ``--jobs 1``, 193 s with ``--jobs 4``; a 162 x 8 one
(the default grid's size), 10 seeds, all methods and sweeps (160 searches): 12.3 min with
``--jobs 4`` while another test suite loaded the machine (load average 14-25).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import math
import os
import platform
import shlex
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _project  # noqa: E402  (every avspot import is in _project.py)
import _recording as R  # noqa: E402

TARGET_FRACTION = 0.99  # of the grid's best validation Average-mAP ...
TARGET_BUDGET = 0.25  # ... with at most this fraction of the grid's trial-epochs
DEFAULT_ASHA = _project.search_asha_defaults()  # (grace period, reduction factor) of avspot search
MAIN_METHODS = ("grid", "random", "tpe", "random+asha", "tpe+asha", "grid+asha")
SWEEP_GRACE = (1, 2, 3)
SWEEP_RF = (2.0, 3.0, 4.0)
SWEEP_STARTUP = (2, 5, 10)
REPORTED = ("val_average_map", "val_map", "train_loss")
TRIAL_CPUS = 0.01


# ---- what a search is ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """One search method: sampler, ASHA settings (grace None: no ASHA), TPE start-up trials."""

    sampler: str  # grid | random | tpe
    grace: int | None = None
    rf: float = DEFAULT_ASHA[1]
    startup: int | None = None  # TPE only; resolved to a number before a run
    baselines: bool = False  # evaluate the recording's baseline points first

    @property
    def name(self) -> str:
        return (
            self.sampler
            + ("+asha" if self.grace is not None else "")
            + ("+baselines" if self.baselines else "")
        )

    def label(self, default_startup: int | None = None) -> str:
        """The method's name plus every setting that differs from `avspot search`'s."""
        out = self.name
        if self.grace is not None and (self.grace, self.rf) != DEFAULT_ASHA:
            out += f" (grace {self.grace}, rf {self.rf:g})"
        if self.sampler == "tpe" and self.startup not in (None, default_startup):
            out += f" (start-up {self.startup})"
        return out


def parse_method(name: str) -> Spec:
    """``SAMPLER[+asha][+baselines]``; baselines only with tpe (as in `avspot search`)."""
    sampler, *parts = name.split("+")
    ok = sampler in ("grid", "random", "tpe") and set(parts) <= {"asha", "baselines"}
    ok = ok and len(set(parts)) == len(parts) and ("baselines" not in parts or sampler == "tpe")
    if not ok:
        valid = ", ".join((*MAIN_METHODS, "tpe+baselines", "tpe+asha+baselines"))
        raise SystemExit(f"--methods {name!r}: unknown; valid: {valid}")
    return Spec(
        sampler, grace=DEFAULT_ASHA[0] if "asha" in parts else None, baselines="baselines" in parts
    )


# ---- the Tune side -------------------------------------------------------------------------------


def replay_trainable(config: dict[str, Any], table: dict[str, list[dict]], names: list) -> None:
    """Tune function trainable: report the recorded epochs of ``config`` one by one."""
    from ray import tune

    key = " ".join(f"{n}={config[n]}" for n in names)  # _recording.point_key
    for report in table[key]:
        tune.report(dict(report))


def report_table(rec: R.Recording) -> dict[str, list[dict[str, float]]]:
    """Key -> the per-epoch reports of that configuration (what a real trial reports)."""
    table = {}
    for key, e in rec.entries.items():
        n = int(e["epochs"])
        reports = []
        for i in range(n):
            r: dict[str, float] = {"epoch": float(i + 1), "finished": float(i + 1 == n)}
            for name in REPORTED:
                values = e["curves"].get(name)
                if values is not None and values[i] is not None:
                    r[name] = float(values[i])
                elif name == rec.metric:
                    r[name] = math.nan  # a diverged epoch: the real trial reports NaN too
            if e.get("epoch_s"):
                r["epoch_time_s"] = float(e["epoch_s"][i])
            reports.append(r)
        table[key] = reports
    return table


def baseline_points(rec: R.Recording) -> list[dict[str, Any]]:
    """The header's ``baselines`` (grid points evaluated first by ``+baselines`` methods)."""
    points = [dict(p) for p in rec.header.get("baselines") or []]
    names = list(rec.axes)
    for p in points:
        if set(p) != set(names) or R.point_key(p, names) not in rec.entries:
            raise R.RecordingError(f"{rec.path}: baseline {p} is not a recorded grid point")
    return points


def _callback_classes() -> tuple[type, type]:
    from ray import tune

    class Events(tune.Callback):
        """Every reported result, in the order the driver (and so ASHA and Optuna) saw them."""

        def __init__(self, metric: str, names: list[str]) -> None:
            self.metric, self.names = metric, names
            self.events: list[tuple[str, str, int, float]] = []  # trial, key, epoch, value
            self.finished: dict[str, bool] = {}

        def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
            key = R.point_key(trial.config, self.names)
            self.events.append(
                (trial.trial_id, key, int(result["training_iteration"]), float(result[self.metric]))
            )

        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            self.finished[trial.trial_id] = bool((trial.last_result or {}).get("finished"))

    class Budget(tune.Stopper):
        """Ends the search at the first result past ``epochs`` trial-epochs (dropped from the
        run): the trial that spent the last epoch of the budget still ends as it would have,
        and is told to Optuna, when that epoch was its last."""

        def __init__(self, events: Events, epochs: int) -> None:
            self.log, self.epochs = events, epochs

        def __call__(self, trial_id: str, result: dict) -> bool:
            return False

        def stop_all(self) -> bool:
            return len(self.log.events) > self.epochs

    return Events, Budget


def _run_task(replayer: Replayer, spec: Spec, seed: int, budget_epochs: int) -> Run:
    """Ray task body for ``Replayer.run_all(jobs > 1)``: one search, driven from a worker."""
    quiet()
    return replayer._run(spec, seed, budget_epochs)


def make_sampler(spec: Spec, seed: int, axes: dict[str, list[Any]]) -> Any:
    import optuna

    if spec.sampler == "grid":
        return optuna.samplers.GridSampler(axes, seed=seed)
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    assert spec.startup is not None
    return _project.tpe_sampler(seed=seed, n_startup_trials=spec.startup)


@dataclass
class Run:
    """One replayed search: the results in order, and how its trials ended."""

    spec: Spec
    seed: int
    budget_epochs: int
    events: list[tuple[str, str, int, float]]
    finished: dict[str, bool]
    wall_s: float
    optuna_states: dict[str, int] = field(default_factory=dict)  # what Optuna was told
    reused: bool = False  # the first budget_epochs of a longer run of the same search

    def truncated(self, budget_epochs: int) -> Run:
        """This run as if its budget had been ``budget_epochs`` (a prefix of the same search)."""
        if budget_epochs >= self.budget_epochs:
            return self
        events = self.events[:budget_epochs]
        trials = {t for t, _, _, _ in events}
        finished = {t: f for t, f in self.finished.items() if t in trials}
        return Run(self.spec, self.seed, budget_epochs, events, finished, self.wall_s, reused=True)


class Replayer:
    """Runs replayed searches on one recording through real Tune (Ray started by the caller)."""

    def __init__(self, rec: R.Recording, storage: str) -> None:
        rec.require_complete()
        self.rec = rec
        self.axes = rec.axes
        self.names = list(self.axes)
        self.n_configs = len(rec.keys)
        self.max_epochs = int(rec.header["max_epochs"])
        self.total_epochs = rec.total_epochs
        self.table = report_table(rec)
        self.storage = storage
        self.default_startup = _project.tuner_startup_trials(self.n_configs)
        self.baselines = baseline_points(rec)
        self._cache: dict[tuple, Run] = {}

    def resolve(self, spec: Spec) -> Spec:
        if spec.sampler != "tpe":
            return Spec(spec.sampler, spec.grace, spec.rf, None)
        startup = spec.startup or self.default_startup
        return Spec(spec.sampler, spec.grace, spec.rf, startup, spec.baselines)

    def budget_epochs(self, budget: float) -> int:
        return max(1, math.ceil(budget * self.total_epochs - 1e-9))

    def run(self, spec: Spec, seed: int, budget: float) -> Run:
        """One search (reused from a longer run of the same method and seed when there is one:
        a search's first N trial-epochs do not depend on when it will stop)."""
        spec = self.resolve(spec)
        epochs = self.budget_epochs(budget)
        cached = self._cache.get((spec, seed))
        if cached is not None and (cached.budget_epochs >= epochs or self._ended(cached)):
            return cached.truncated(epochs)
        run = self._run(spec, seed, epochs)
        self._cache[(spec, seed)] = run
        return run

    def _ended(self, run: Run) -> bool:
        """True when the search stopped before its budget (no trials left to suggest)."""
        return len(run.events) < run.budget_epochs

    def run_all(
        self, requests: Sequence[tuple[Spec, int, float]], jobs: int = 1, log: Any = print
    ) -> None:
        """Run every distinct search of ``requests`` (spec, seed, budget) once, at the largest
        budget asked for it (the others are its prefixes). ``jobs`` > 1 runs that many searches
        at a time, each driven by its own Tune inside a Ray task: the searches are independent
        and each one's trials still run one at a time, so every result is the same as with
        ``jobs=1``; only the waits (actor start-up, Tune's event loop) overlap."""
        want: dict[tuple[Spec, int], int] = {}
        for spec, seed, budget in requests:
            key = (self.resolve(spec), seed)
            want[key] = max(want.get(key, 0), self.budget_epochs(budget))
        todo = [
            (spec, seed, epochs)
            for (spec, seed), epochs in sorted(want.items(), key=lambda kv: -kv[1])
            if not self._covers(self._cache.get((spec, seed)), epochs)
        ]

        def done(run: Run) -> None:
            self._cache[(run.spec, run.seed)] = run
            log(
                f"  {run.spec.label(self.default_startup):<34} seed {run.seed:>2}: "
                f"{len({t for t, _, _, _ in run.events}):>4} trials, {len(run.events):>5} "
                f"trial-epochs, {run.wall_s:.1f}s  [{len(self._cache)}/{len(want)}]"
            )

        if jobs <= 1:
            for spec, seed, epochs in todo:
                done(self._run(spec, seed, epochs))
            return
        import ray

        task = ray.remote(num_cpus=0, max_retries=0)(_run_task)
        me = ray.put(self._portable())
        pending: dict[Any, tuple[Spec, int, int]] = {}
        queue = list(todo)
        while queue or pending:
            while queue and len(pending) < jobs:
                request = queue.pop(0)
                pending[task.remote(me, *request)] = request
            [ready], _ = ray.wait(list(pending), num_returns=1)
            spec, seed, epochs = pending.pop(ready)
            got = ray.get(ready)  # rebuilt with this process's Spec (the cache's keys)
            done(
                Run(
                    spec,
                    seed,
                    epochs,
                    list(got.events),
                    dict(got.finished),
                    got.wall_s,
                    dict(got.optuna_states),
                )
            )

    def _covers(self, run: Run | None, epochs: int) -> bool:
        return run is not None and (run.budget_epochs >= epochs or self._ended(run))

    def _portable(self) -> Replayer:
        """A copy without the cache, for Ray tasks."""
        other = object.__new__(Replayer)
        other.__dict__.update({k: v for k, v in self.__dict__.items() if k != "_cache"})
        other._cache = {}
        return other

    def _run(self, spec: Spec, seed: int, budget_epochs: int) -> Run:
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler
        from ray.tune.search import ConcurrencyLimiter

        metric = self.rec.metric
        search_cls = _project.optuna_search_cls()
        if spec.baselines and not self.baselines:
            raise R.RecordingError(f"{self.rec.path}: no baselines in the header for {spec.name}")
        searcher = search_cls(
            space=R.ReplaySpace(self.axes),
            sampler=make_sampler(spec, seed, self.axes),
            metric=metric,
            mode="max",
            # as `avspot search` does for a space with BASELINES: enqueued, evaluated first
            points_to_evaluate=[dict(p) for p in self.baselines] if spec.baselines else None,
        )
        scheduler = None
        if spec.grace is not None:
            scheduler = ASHAScheduler(
                time_attr="training_iteration",
                metric=metric,
                mode="max",
                max_t=self.max_epochs,
                grace_period=min(spec.grace, self.max_epochs),
                reduction_factor=spec.rf,
            )
        Events, Budget = _callback_classes()
        events = Events(metric, self.names)
        trainable = tune.with_parameters(replay_trainable, table=self.table, names=self.names)
        tuner = tune.Tuner(
            # Any CPU amount gives the same search (one trial at a time); a sliver lets --jobs
            # searches share a small machine.
            tune.with_resources(trainable, {"cpu": TRIAL_CPUS}),
            tune_config=tune.TuneConfig(
                search_alg=ConcurrencyLimiter(searcher, max_concurrent=1),
                scheduler=scheduler,
                # grid: every configuration once; otherwise more trials than the budget can
                # take (each trial spends >= 1 epoch), so that the budget ends the search
                num_samples=self.n_configs if spec.sampler == "grid" else budget_epochs,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=f"replay-{spec.name}-{seed}-{uuid.uuid4().hex[:8]}",
                storage_path=self.storage,
                callbacks=[events],
                stop=Budget(events, budget_epochs),
                checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=0),
                failure_config=tune.FailureConfig(max_failures=0),
                verbose=0,
            ),
        )
        t0 = time.perf_counter()
        tuner.fit()
        wall = time.perf_counter() - t0
        states: dict[str, int] = {}
        for t in searcher.study().get_trials(deepcopy=False):
            states[t.state.name] = states.get(t.state.name, 0) + 1
        # The result that tripped the budget is not part of a search with this budget.
        kept = events.events[:budget_epochs]
        return Run(spec, seed, budget_epochs, kept, events.finished, wall, states)


# ---- anytime curves and their summaries ----------------------------------------------------------


def anytime_curve(values: Sequence[float], best: float, total: int) -> np.ndarray:
    """Best value found within the first e trial-epochs, as a fraction of ``best``,
    for e = 0 .. ``total`` (0 before anything is found; held after the search ended)."""
    out = np.zeros(total + 1)
    if best <= 0:
        raise ValueError(f"the grid's best value must be > 0, got {best}")
    running = -math.inf
    for e in range(1, total + 1):
        if e <= len(values) and not math.isnan(values[e - 1]):
            running = max(running, float(values[e - 1]))
        out[e] = max(running, 0.0) / best if running > -math.inf else 0.0
    return out


def at_fraction(curve: np.ndarray, fraction: float) -> float:
    """The curve's value with at most ``fraction`` of the grid's trial-epochs spent."""
    total = len(curve) - 1
    return float(curve[math.floor(fraction * total + 1e-9)])


def first_reaching(curve: np.ndarray, level: float) -> float | None:
    """Fraction of the grid's trial-epochs after which the curve first reaches ``level``."""
    hits = np.nonzero(curve >= level - 1e-12)[0]
    return None if len(hits) == 0 else float(hits[0] / (len(curve) - 1))


def _seconds_fraction(rec: R.Recording, run: Run, best: float, fraction: float) -> float:
    """Like at_fraction, but budgeted by the recorded seconds of the epochs spent."""
    limit = fraction * rec.total_seconds
    spent, found = 0.0, 0.0
    for _, key, epoch, value in run.events:
        spent += float((rec.entries[key].get("epoch_s") or [0.0] * epoch)[epoch - 1])
        if spent > limit + 1e-9:
            break
        if not math.isnan(value):
            found = max(found, value / best)
    return found


def run_stats(rec: R.Recording, run: Run, best: float, budget: float = TARGET_BUDGET) -> dict:
    """What one search found and spent."""
    total = rec.total_epochs
    values = [v for _, _, _, v in run.events]
    curve = anytime_curve(values, best, total)
    trials: dict[str, int] = {}
    for trial, _, epoch, _ in run.events:
        trials[trial] = max(epoch, trials.get(trial, 0))
    # the trial that the budget ended is not an early stop (a used-up sampler ends none)
    last = run.events[-1][0] if run.events and len(run.events) >= run.budget_epochs else None
    stopped = [t for t in trials if not run.finished.get(t, False) and t != last]
    spent = min(len(values), total)
    return {
        "seed": run.seed,
        "at_target_budget": round(at_fraction(curve, budget), 6),
        "at_target_budget_seconds": round(_seconds_fraction(rec, run, best, budget), 6),
        "reached_99_at": first_reaching(curve, TARGET_FRACTION),
        "found_best": bool(curve[-1] >= 1 - 1e-12),
        "trials": len(trials),
        "trial_epochs": len(values),
        "stopped_early": len(stopped),
        "stopped_at_first_rung": sum(
            1 for t in stopped if trials[t] == min(run.spec.grace or 0, rec.header["max_epochs"])
        ),
        "best_found": round(float(curve[spent]), 6),
        "distinct_configs": len({k for _, k, _, _ in run.events}),
        "optuna_states": dict(run.optuna_states),
        "reused_prefix": run.reused,
        "wall_s": None if run.reused else round(run.wall_s, 3),  # reused: see the longer run
        "_curve": curve,
    }


def _median_or_none(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(float(np.median(known)), 3) if known else None


def _q(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q))


def summarize(label: str, stats: list[dict], budget: float = TARGET_BUDGET) -> dict:
    """Median and interquartile range over seeds; the verdict against the target."""
    at = [s["at_target_budget"] for s in stats]
    curves = np.stack([s["_curve"] for s in stats])  # (seeds, total + 1)
    reach = [s["reached_99_at"] for s in stats]
    reach_num = [r if r is not None else math.inf for r in reach]
    med_reach = float(np.median(reach_num))
    return {
        "method": label,
        "seeds": len(stats),
        "at_target_budget": {
            "median": round(float(np.median(at)), 6),
            "q25": round(_q(at, 25), 6),
            "q75": round(_q(at, 75), 6),
            "mean": round(float(np.mean(at)), 6),
            "min": round(min(at), 6),
        },
        "at_target_budget_seconds_median": round(
            float(np.median([s["at_target_budget_seconds"] for s in stats])), 6
        ),
        "meets_target": bool(np.median(at) >= TARGET_FRACTION - 1e-12),
        "reached_99_at_median": None if math.isinf(med_reach) else round(med_reach, 6),
        "reached_99_within_budget": sum(1 for r in reach if r is not None and r <= budget + 1e-9),
        "found_best": sum(1 for s in stats if s["found_best"]),
        "trials_median": float(np.median([s["trials"] for s in stats])),
        "trial_epochs_median": float(np.median([s["trial_epochs"] for s in stats])),
        "stopped_early_median": float(np.median([s["stopped_early"] for s in stats])),
        "wall_s_median": _median_or_none([s["wall_s"] for s in stats]),
        "curve": {
            "median": np.round(np.median(curves, axis=0), 5).tolist(),
            "q25": np.round(np.percentile(curves, 25, axis=0), 5).tolist(),
            "q75": np.round(np.percentile(curves, 75, axis=0), 5).tolist(),
        },
        "per_seed": [{k: v for k, v in s.items() if not k.startswith("_")} for s in stats],
    }


def best_setting(rows: list[dict]) -> dict | None:
    """The setting with the highest median fraction at the target budget (then mean, then q25;
    on a full tie, `avspot search`'s own setting)."""
    if not rows:
        return None
    return max(
        rows,
        key=lambda r: (
            r["at_target_budget"]["median"],
            r["at_target_budget"]["mean"],
            r["at_target_budget"]["q25"],
            r["method"].endswith("= avspot search"),
        ),
    )


# ---- output --------------------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "never" if x is None else f"{100 * x:.0f}%"


def _secs(x: float | None) -> str:
    return "reused" if x is None else f"{x:.2f}"


def print_table(title: str, rows: list[dict], out: Any = None) -> None:
    out = out or sys.stdout
    print(f"\n{title}", file=out)
    head = (
        f"{'method':<42} {'seeds':>5}  {'at 25% median [IQR]':<24} {'mean':>6}  "
        f"{'target':<6} {'99% at':>7} {'best':>6} {'trials':>6} {'epochs':>6} "
        f"{'ASHA-cut':>8} {'s/search':>8}"
    )
    print(head, file=out)
    for r in rows:
        a = r["at_target_budget"]
        print(
            f"{r['method']:<42} {r['seeds']:>5}  "
            f"{a['median']:.3f} [{a['q25']:.3f}, {a['q75']:.3f}]     {a['mean']:>6.3f}  "
            f"{'MET' if r['meets_target'] else 'no':<6} {_pct(r['reached_99_at_median']):>7} "
            f"{r['found_best']:>3}/{r['seeds']:<2} {r['trials_median']:>6.0f} "
            f"{r['trial_epochs_median']:>6.0f} {r['stopped_early_median']:>8.0f} "
            f"{_secs(r['wall_s_median']):>8}",
            file=out,
        )


def plot(result: dict, path: Path) -> None:
    """Anytime curves (median and IQR over seeds) and the sweeps' fractions at 25 %."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 5.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax, ax2 = fig.subplots(1, 2, width_ratios=[3, 2])
    total = result["grid"]["total_epochs"]
    for r in result["methods"]:
        med = np.asarray(r["curve"]["median"])
        x = np.arange(len(med)) / total
        (line,) = ax.step(x, med, where="post", label=r["method"], lw=1.6)
        ax.fill_between(
            x,
            r["curve"]["q25"],
            r["curve"]["q75"],
            step="post",
            color=line.get_color(),
            alpha=0.15,
            lw=0,
        )
    ax.axvline(TARGET_BUDGET, color="0.3", ls="--", lw=1)
    ax.axhline(TARGET_FRACTION, color="0.3", ls=":", lw=1)
    ax.set_xlim(0, 1)
    # zoom on what matters: from a little below the worst median at 5 % of the budget
    early = [r["curve"]["median"][max(1, round(0.05 * total))] for r in result["methods"]]
    ax.set_ylim(max(0.0, math.floor(10 * min(early)) / 10 - 0.05), 1.01)
    ax.text(TARGET_BUDGET, 1.005, f" {TARGET_BUDGET:.0%} ", ha="left", va="top", fontsize=8)
    ax.set_xlabel("trial-epochs spent / the full grid's trial-epochs")
    ax.set_ylabel(f"best {result['grid']['metric']} found / the grid's best")
    ax.set_title(
        f"{result['grid']['configs']} configurations x {result['grid']['max_epochs']} "
        f"epochs, {result['seeds']} seeds (median, IQR band)",
        fontsize=10,
    )
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    rows = [r for sweep in result["sweeps"].values() for r in sweep] or result["methods"]
    y = np.arange(len(rows))
    med = np.array([r["at_target_budget"]["median"] for r in rows])
    lo = med - np.array([r["at_target_budget"]["q25"] for r in rows])
    hi = np.array([r["at_target_budget"]["q75"] for r in rows]) - med
    ax2.barh(y, med, xerr=[lo, hi], color="tab:blue", alpha=0.7, capsize=2)
    ax2.set_yticks(y, [r["method"] for r in rows], fontsize=7)
    ax2.invert_yaxis()
    ax2.axvline(TARGET_FRACTION, color="0.3", ls=":", lw=1)
    ax2.set_xlim(max(0.0, float(med.min() - 0.1)), 1.005)
    ax2.set_xlabel(f"fraction of the grid's best at {TARGET_BUDGET:.0%} of its trial-epochs")
    ax2.set_title("settings (median, IQR)" if result["sweeps"] else "methods", fontsize=10)
    ax2.grid(alpha=0.3, axis="x")
    source = result.get("recording_header", {}).get("data", {}).get("source")
    if source:  # which data the recorded curves came from, on the figure itself
        _project.add_data_note(fig, source)
    fig.savefig(path, dpi=110)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def verdict(rows: list[dict]) -> dict | None:
    """The project's target for TPE + ASHA (as `avspot search` runs it), if it was replayed."""
    row = next((r for r in rows if r["method"] == "tpe+asha"), None)
    if row is None:
        return None
    a = row["at_target_budget"]
    return {
        "method": "tpe+asha",
        "median_fraction_at_target_budget": a["median"],
        "iqr": [a["q25"], a["q75"]],
        "met": row["meets_target"],
        "text": (
            f"TPE + ASHA found {a['median']:.1%} of the grid's best (median over "
            f"{row['seeds']} seeds, IQR {a['q25']:.1%}-{a['q75']:.1%}) with "
            f"{TARGET_BUDGET:.0%} of the grid's trial-epochs: target "
            f"(>= {TARGET_FRACTION:.0%}) {'MET' if row['meets_target'] else 'NOT met'}"
        ),
    }


# ---- main ----------------------------------------------------------------------------------------


def init_ray(num_cpus: int) -> bool:
    """Start a local Ray unless one is running; True when this call started it."""
    import ray
    from ray import cloudpickle

    if __name__ != "__main__":  # imported (tests): ship this module's code by value
        cloudpickle.register_pickle_by_value(sys.modules[__name__])
    if ray.is_initialized():
        return False
    # Workers import _recording and _project by name (Tune pickles the searcher, whose space is
    # a _recording.ReplaySpace, with the standard pickle inside --jobs tasks).
    here = str(Path(__file__).resolve().parent)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if here not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([here, *paths])
    # address="local": a Ray of our own even when another one runs on this machine (a bare
    # ray.init() joins the cluster named in /tmp/ray/ray_current_cluster).
    ray.init(
        address="local",
        num_cpus=num_cpus,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    return True


def quiet() -> None:
    """Silence log chatter that replays produce by the thousand (nothing that changes results):
    Optuna's per-trial INFO lines and experimental-feature warnings, Tune's end-of-grid warning
    from a used-up GridSampler (``study.stop()`` outside ``optimize``)."""
    import optuna

    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"  # read by Tune at run time: the quiet output path
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    for name in ("ray.tune", "ray.tune.search.optuna.optuna_search"):
        logging.getLogger(name).setLevel(logging.ERROR)


def replay(
    rec: R.Recording,
    *,
    methods: Sequence[str] = MAIN_METHODS,
    seeds: Sequence[int] = tuple(range(10)),
    budget: float = 1.0,
    sweeps: Sequence[str] = ("asha", "startup"),
    sweep_budget: float = TARGET_BUDGET,
    storage: str | None = None,
    jobs: int = 1,
    command: str = "",
    log: Any = print,
) -> dict:
    """Replay every method and sweep over ``seeds``; the result document (without the plot)."""
    rec.require_complete()
    best, best_key, best_epoch = rec.best()
    quiet()
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="avspot-replay-", dir=storage) as tmp:
        rp = Replayer(rec, tmp)
        ds = rp.default_startup
        groups: list[tuple[str, str, Spec, float]] = [  # (group, label, spec, budget)
            ("methods", m, parse_method(m), budget) for m in methods
        ]
        default = " = avspot search"
        if "asha" in sweeps:
            groups += [
                (
                    "asha",
                    f"tpe+asha (grace {g}, rf {rf:g})"
                    + (default if (g, rf) == DEFAULT_ASHA else ""),
                    Spec("tpe", g, rf),
                    sweep_budget,
                )
                for g in SWEEP_GRACE
                for rf in SWEEP_RF
            ]
        if "startup" in sweeps:
            groups += [
                (
                    "startup",
                    f"tpe+asha (start-up {n})" + (default if n == ds else ""),
                    Spec("tpe", *DEFAULT_ASHA, n),
                    sweep_budget,
                )
                for n in SWEEP_STARTUP
            ]
        requests = [(spec, seed, b) for _, _, spec, b in groups for seed in seeds]
        rp.run_all(requests, jobs=jobs, log=log)
        out: dict[str, list[dict]] = {}
        for group, label, spec, b in groups:
            stats = [run_stats(rec, rp.run(spec, seed, b), best) for seed in seeds]
            out.setdefault(group, []).append(summarize(label, stats))
        rows = out.pop("methods", [])
        sweep_rows = out
        searches = len(rp._cache)
        search_s = sum(r.wall_s for r in rp._cache.values())
    import optuna
    import ray

    return {
        "format": "avspot-search-replay",
        "version": 1,
        "created": _now(),
        "command": command,
        "recording": str(rec.path),
        "recording_header": {
            k: rec.header.get(k)
            for k in (
                "preset",
                "metric",
                "max_epochs",
                "seed",
                "fixed",
                "data",
                "created",
                "machine",
                "command",
            )
        },
        "machine": {
            "host": platform.node(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "ray": ray.__version__,
            "optuna": optuna.__version__,
        },
        "target": {
            "fraction_of_best": TARGET_FRACTION,
            "budget_fraction": TARGET_BUDGET,
            "statistic": "median over seeds",
        },
        "grid": {
            "configs": len(rec.keys),
            "metric": rec.metric,
            "max_epochs": int(rec.header["max_epochs"]),
            "total_epochs": rec.total_epochs,
            "total_seconds": round(rec.total_seconds, 2),
            "best": best,
            "best_key": best_key,
            "best_epoch": best_epoch,
            "tpe_default_startup": ds,
        },
        "seeds": len(seeds),
        "budget": budget,
        "sweep_budget": sweep_budget,
        "methods": rows,
        "sweeps": sweep_rows,
        "best_settings": {
            name: (best_setting(r) or {}).get("method") for name, r in sweep_rows.items()
        },
        "verdict": verdict(rows),
        "timing": {
            "searches": searches,
            "search_s": round(search_s, 1),
            "jobs": jobs,
            "total_s": round(time.perf_counter() - t_all, 1),
        },
    }


def default_methods(rec: R.Recording) -> str:
    extra = ("tpe+asha+baselines",) if rec.header.get("baselines") else ()
    return ",".join((*MAIN_METHODS, *extra))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recording", help="a recording JSON written by record.py (or by hand)")
    p.add_argument(
        "--methods",
        default=None,
        help="comma-separated (default: "
        f"{','.join(MAIN_METHODS)}, and tpe+asha+baselines if the recording has them)",
    )
    p.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 per method (default 10)")
    budget_help = "stop a search after this fraction of the grid's trial-epochs"
    p.add_argument("--budget", type=float, default=1.0, help=budget_help)
    p.add_argument("--sweep", default="asha,startup", help="asha, startup, both or none")
    p.add_argument(
        "--sweep-budget",
        type=float,
        default=TARGET_BUDGET,
        help="budget of the sweeps' searches (default: the target's 0.25)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="output prefix (default: the recording's, "
        "giving NAME.replay.json and NAME.replay.png)",
    )
    p.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray (default 2)")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="searches at a time (each still one trial at a time; same results)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        rec = R.load(args.recording)
        rec.require_complete()
    except R.RecordingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    methods = [m for m in (args.methods or default_methods(rec)).split(",") if m]
    for m in methods:
        parse_method(m)
    sweeps = [] if args.sweep == "none" else [s for s in args.sweep.split(",") if s]
    if set(sweeps) - {"asha", "startup"}:
        raise SystemExit(f"--sweep {args.sweep!r}: expected asha, startup, both or none")
    for name in ("budget", "sweep_budget"):
        if not TARGET_BUDGET <= getattr(args, name) <= 1.0:
            raise SystemExit(f"--{name.replace('_', '-')} must be in [{TARGET_BUDGET}, 1]")
    if args.seeds < 1 or args.jobs < 1:
        raise SystemExit("--seeds and --jobs must be >= 1")
    argv = sys.argv[1:] if argv is None else argv
    command = shlex.join([sys.executable, str(Path(__file__).resolve()), *argv])
    print(f"$ {command}", flush=True)
    best, key, epoch = rec.best()
    print(
        f"{rec.path}: {len(rec.keys)} configurations, {rec.total_epochs} trial-epochs; "
        f"grid best {rec.metric} {best:.4f} ({key}, epoch {epoch})",
        flush=True,
    )
    import ray

    t0 = time.perf_counter()
    started = init_ray(args.num_cpus)
    init_s = time.perf_counter() - t0
    try:
        result = replay(
            rec,
            methods=methods,
            seeds=range(args.seeds),
            budget=args.budget,
            sweeps=sweeps,
            sweep_budget=args.sweep_budget,
            jobs=args.jobs,
            command=command,
            log=lambda line: print(line, flush=True),
        )
    finally:
        if started:
            ray.shutdown()
    result["timing"]["ray_init_s"] = round(init_s, 1)
    prefix = Path(args.out) if args.out else rec.path.with_suffix("")
    json_path = prefix.with_name(prefix.name + ".replay.json")
    png_path = prefix.with_name(prefix.name + ".replay.png")
    R.atomic_write_json(json_path, result)
    plot(result, png_path)

    print_table(
        f"methods (budget {args.budget:g} of the grid's trial-epochs; the target: "
        f">= {TARGET_FRACTION:.0%} of the grid's best at <= {TARGET_BUDGET:.0%}, "
        "median over seeds)",
        result["methods"],
    )
    for name, rows in result["sweeps"].items():
        print_table(f"sweep: {name} (tpe+asha, budget {args.sweep_budget:g})", rows)
        print(f"best {name} setting: {result['best_settings'][name]}")
    if result["verdict"]:
        print(f"\n{result['verdict']['text']}")
    t = result["timing"]
    print(
        f"\n{t['searches']} searches through Tune, {t['search_s']:.0f}s of search time, "
        f"{args.jobs} at a time: {t['total_s']:.0f}s in all (Ray start {t['ray_init_s']:.0f}s)"
    )
    print(f"wrote {json_path} and {png_path}")
    print(f"reproduce: {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
