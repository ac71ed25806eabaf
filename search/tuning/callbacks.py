"""Driver-side Ray Tune callbacks: progress lines, and the MLflow runs of stopped trials."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray import tune

from avspot.avmodels.pooling import POOLINGS
from avspot.search.tracking.runs import end_trial_runs
from avspot.search.tracking.scrub import scrub_text

# Columns of a trial's one-line summary, in this order, when its config has them.
SUMMARY_KEYS = ("fusion", "pooling", "clusters", "window_s", "dropout", "lr", "schedule")


def summary(config: dict[str, Any]) -> str:
    """``fusion=before_fc pooling=netvlad clusters=32 ...`` (clusters only where they exist)."""
    parts = []
    for key in SUMMARY_KEYS:
        if key not in config:
            continue
        if key == "clusters":
            pooling = POOLINGS.get(str(config.get("pooling")))
            if pooling is None or not pooling.has_clusters:
                continue
        v = config[key]
        parts.append(f"{key}={v:.3g}" if isinstance(v, float) else f"{key}={v}")
    return " ".join(parts)


class ProgressCallback(tune.Callback):
    """One line per epoch a trial reports and one per trial that ends, through ``log``."""

    def __init__(self, metric: str, total: int | None, log: Callable[[str], None]) -> None:
        self.metric, self.total, self.log, self.done = metric, total, log, 0
        self.best: dict[str, float] = {}
        self.number: dict[str, int] = {}

    def _name(self, trial: Any) -> str:
        n = self.number.setdefault(trial.trial_id, len(self.number) + 1)
        return f"trial {n}{f'/{self.total}' if self.total else ''} {trial.trial_id}"

    def _say(self, line: str) -> None:
        self.log(line)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any):
        value = result.get(self.metric)
        if not isinstance(value, int | float):
            return
        best = max(value, self.best.get(trial.trial_id, value))
        self.best[trial.trial_id] = best
        loss = result.get("train_loss", math.nan)
        secs = result.get("epoch_time_s", math.nan)
        self._say(
            f"{self._name(trial)} epoch {int(result.get('epoch', 0))}: {self.metric}={value:.4f} "
            f"(best {best:.4f}) train_loss={loss:.4f} {secs:.0f}s"
        )

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any):
        self.done += 1
        r = trial.last_result or {}
        epochs = int(r.get("training_iteration", 0))
        how = "completed" if r.get("finished") else "stopped early (ASHA)"
        value = r.get(self.metric, math.nan)
        best = self.best.get(trial.trial_id, value)
        self._say(
            f"{self._name(trial)} done ({self.done} so far): {summary(trial.config)} | "
            f"{self.metric}={value:.4f} (best {best:.4f}) | {epochs} epochs, {how}"
        )

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any):
        node = (trial.last_result or {}).get("node_ip") or trial.temporary_state.location.hostname
        self._say(f"{self._name(trial)} FAILED on node {node or '?'}: {summary(trial.config)}")
        for line in error_tail(trial.error_file):
            self._say(f"    {line}")


def error_tail(path: str | None, lines: int = 6) -> list[str]:
    """The last lines of a trial's error file (Tune writes the traceback there), scrubbed."""
    if not path:
        return []
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return []
    return [scrub_text(line) for line in text.strip().splitlines()[-lines:]]


class EndStoppedRunsCallback(tune.Callback):
    """A trial that ends while its MLflow child run is still RUNNING was stopped by the scheduler
    (ASHA kills the trial's actor, so the trainable's ``finally`` never runs): mark the run
    KILLED; an errored trial's run FAILED. Scoped to one search's parent run."""

    def __init__(self, parent_run_id: str, uri: str | None = None) -> None:
        self.parent_run_id = parent_run_id
        self.uri = uri

    def _end(self, trial: Any, status: str) -> None:
        try:
            end_trial_runs(str(trial.trial_id), status, self.parent_run_id, uri=self.uri)
        except Exception as exc:  # noqa: BLE001 - never break the search for this
            print(
                f"avspot: could not end the MLflow run of trial {trial.trial_id}: "
                f"{scrub_text(str(exc))}"
            )

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any):
        self._end(trial, "KILLED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any):
        self._end(trial, "FAILED")
