"""The MLflow child run of one trial: a trainer callback, created inside the trial.

Per epoch it logs the trainer's numeric metrics at step = epoch. At the end of training:
the best epoch's metrics as ``best_<key>`` plus ``best_epoch``; with table halves to score, the
best checkpoint's Average-mAP per spotting method (``val_average_map_<method>``), the
mAP-vs-tolerance curve and event timelines; plots and JSON as artifacts; the best model as the
MLflow model ``model``.

Compute accounting: every epoch (and once more when the run closes) the trial's cumulative
``trial_wall_s`` and the device time of the resources it holds, ``cpu_core_s`` and ``gpu_s``
(wall time x the CPUs / GPUs Ray assigned), at step = epoch: trials that ASHA stops never reach
``on_train_end``, so their cost is already recorded. Inference cost for the Pareto front:
``n_params`` of the evaluated model (after the first epoch and of the final model) and
``spot_s_per_half``, seconds of ``predict_half`` per validation half in the final evaluation.
A trial whose process restarts reopens its run and adds to the cost logged before.

The run ends FINISHED after ``on_train_end``; the trainable calls ``close("FAILED", exc)`` on
an exception (or uses the callback as a context manager); ``close`` is idempotent and never
overwrites a status set by the driver (KILLED after an ASHA stop).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from avspot.search import plots
from avspot.search.tracking.client import (
    flush_logs,
    get_client,
    log_figure,
    log_json,
    log_metrics,
    log_params,
    log_table_input,
    retry,
    run_tags,
)
from avspot.search.tracking.names import (
    M_CPU_CORE_S,
    M_GPU_S,
    M_N_PARAMS,
    M_SPOT_S_PER_HALF,
    M_TRIAL_WALL_S,
    TAG_CODE_VERSION,
    TAG_DATA_SOURCE,
    TAG_ERROR,
    TAG_EVAL_ERROR,
    TAG_FINGERPRINT,
    TAG_MODEL_URI,
    TAG_PARENT,
    TAG_ROLE,
    TAG_SEARCH,
    TAG_TRIAL,
    TAG_TRIAL_ID,
)
from avspot.search.tracking.runs import check_status, open_trial_run
from avspot.search.tracking.scrub import flatten, scrub_text

if TYPE_CHECKING:  # pragma: no cover
    from avspot.avmodels.metrics import SpottingResult
    from avspot.avmodels.trainer import Trainer, TrainResult
    from avspot.datasets.halves import Half
    from avspot.datasets.manifest import Manifest

HalvesFn = Callable[[str], Iterable["Half"]]  # split -> its halves (streamed)


class MLflowTrialCallback:
    """Trainer callback that records one trial as a child run of the search's parent run."""

    def __init__(
        self,
        parent_run_id: str,
        trial_config: Mapping[str, Any],
        run_name: str | None = None,
        *,
        tracking_uri: str | None = None,
        trial_id: str | None = None,
        data_uri: str | None = None,
        manifest: Manifest | None = None,
        halves: HalvesFn | None = None,
        tags: Mapping[str, Any] | None = None,
        log_model: bool = True,
        log_plots: bool = True,
        eval_max_halves: int | None = None,
        timeline_halves: int = 2,
        input_example_frames: int = 240,
        cpus: float = 1.0,
        gpus: float = 0.0,
    ) -> None:
        self._t0 = time.perf_counter()  # the trial holds its resources from here on
        self.cpus, self.gpus = float(cpus), float(gpus)
        # No health check in a trial: one that (re)starts while the server is down waits (retry).
        self.client = get_client(tracking_uri, check=False)
        parent = retry(self.client.get_run, parent_run_id)
        self.parent_run_id = parent_run_id
        self.experiment_id = parent.info.experiment_id
        self.halves = halves
        self.log_model = log_model
        self.log_plots = log_plots
        self.eval_max_halves = eval_max_halves
        self.timeline_halves = timeline_halves
        self.input_example_frames = input_example_frames
        self.model_uri: str | None = None
        self.status: str | None = None
        all_tags: dict[str, Any] = {TAG_PARENT: parent_run_id, TAG_ROLE: "trial"}
        for key in (TAG_SEARCH, TAG_FINGERPRINT, TAG_DATA_SOURCE, TAG_CODE_VERSION):
            if key in parent.data.tags:
                all_tags[key] = parent.data.tags[key]
        if run_name:
            all_tags[TAG_TRIAL] = run_name
        if trial_id:
            all_tags[TAG_TRIAL_ID] = trial_id
        all_tags.update(tags or {})
        # Which data this trial's figures come from (each carries it as a footnote).
        self.data_source: str | None = (
            manifest.source if manifest is not None else all_tags.get(TAG_DATA_SOURCE)
        )
        # A restarted trial reopens its run; epochs up to `logged_through` were logged before.
        self.run_id, self.logged_through = open_trial_run(
            self.client, self.experiment_id, parent_run_id, trial_id, run_tags(all_tags), run_name
        )
        self._last_step = self.logged_through
        self._cost_before: dict[str, float] = {}  # what earlier processes of this trial held
        if self.logged_through:
            logged = retry(self.client.get_run, self.run_id).data.metrics
            self._cost_before = {
                k: logged[k] for k in (M_TRIAL_WALL_S, M_CPU_CORE_S, M_GPU_S) if k in logged
            }
        log_params(self.client, self.run_id, flatten(trial_config))
        if data_uri is not None and manifest is not None:
            log_table_input(self.client, self.run_id, data_uri, manifest)

    # -- trainer hooks --------------------------------------------------------------------------

    def on_epoch_end(self, epoch: int, metrics: Mapping[str, Any], trainer: Trainer) -> None:
        """Log this epoch's numeric metrics and the cumulative cost so far at step = epoch (the
        parameter count too, after the first epoch: a stopped trial has it as well)."""
        if epoch <= self.logged_through:  # logged before this trial's process restarted
            return
        row = {k: v for k, v in metrics.items() if k != "epoch"}
        row.update(self.cost())
        if self._last_step == 0 and trainer is not None:
            from avspot.avmodels.fusion import count_parameters

            row[M_N_PARAMS] = count_parameters(trainer.eval_model())
        self._last_step = max(self._last_step, int(epoch))
        log_metrics(self.client, self.run_id, row, step=epoch)
        # The trial's report follows, after which a scheduler may end this process: the epoch's
        # metrics must be stored first (waits through a server outage, bounded).
        flush_logs(self.client)

    def cost(self) -> dict[str, float]:
        """Cumulative wall time of this trial and the CPU-core and GPU seconds it held (earlier
        processes of a restarted trial included)."""
        wall = time.perf_counter() - self._t0
        now = {M_TRIAL_WALL_S: wall, M_CPU_CORE_S: wall * self.cpus, M_GPU_S: wall * self.gpus}
        return {k: v + self._cost_before.get(k, 0.0) for k, v in now.items()}

    def on_train_end(self, result: TrainResult) -> None:
        """Best-epoch summary, evaluation artifacts and the model; the run ends FINISHED."""
        summary: dict[str, Any] = {f"best_{k}": v for k, v in result.best_metrics.items()}
        summary["best_epoch"] = result.best_epoch
        summary["epochs"] = len(result.history)
        summary["wall_s"] = result.wall_s
        if result.model is not None:
            from avspot.avmodels.fusion import count_parameters

            summary[M_N_PARAMS] = count_parameters(result.model)
        log_metrics(self.client, self.run_id, summary, step=result.best_epoch)
        evaluation: dict[str, Any] = {}
        if self.halves is not None and result.model is not None:
            try:
                evaluation = self._evaluate(result)
            except Exception as exc:  # noqa: BLE001 - the trial's result stands without it
                self.client.set_tag(
                    self.run_id, TAG_EVAL_ERROR, scrub_text(f"{type(exc).__name__}: {exc}")[:5000]
                )
        if evaluation.get("halves"):
            per_half = evaluation["predict_s"] / evaluation["halves"]
            log_metrics(self.client, self.run_id, {M_SPOT_S_PER_HALF: per_half})
        full = evaluation.get("spotting", {}).get(result.config.spot_method)
        if full is not None:  # the kept epoch scored in full: every half, 1 s stride
            full_values = {"full_val_average_map": full.average_map}
            full_values["full_val_map"] = result.best_metrics.get("val_map")  # always complete
            log_metrics(self.client, self.run_id, full_values, step=result.best_epoch)
        self.log_evaluation(
            history=result.history,
            schedule=result.config.schedule,
            confusion=result.best_chunk.get("confusion"),
            spotting=evaluation.get("spotting"),
            timelines=evaluation.get("timelines"),
        )
        if self.log_model and result.model is not None:
            from avspot.search.tracking.pyfunc import log_spotter_model

            self.model_uri = retry(  # waits through an outage (a model logs many requests)
                log_spotter_model,
                self.run_id,
                self.experiment_id,
                result.model,
                result.config.model,
                step=result.best_epoch,
                example_frames=self.input_example_frames,
            )
            retry(self.client.set_tag, self.run_id, TAG_MODEL_URI, self.model_uri)
        self.close("FINISHED")

    def _evaluate(self, result: TrainResult) -> dict[str, Any]:
        from avspot.avmodels.validation import evaluate_checkpoint

        assert self.halves is not None and result.model is not None
        timeline = []
        if self.timeline_halves > 0:
            for i, half in enumerate(self.halves("test")):
                if i >= self.timeline_halves:
                    break
                timeline.append(half)
        return evaluate_checkpoint(
            result.model,
            self.halves("valid"),
            result.config.model.window_frames,
            timeline_halves=timeline,
            max_halves=self.eval_max_halves,
        )

    # -- artifacts --------------------------------------------------------------------------------

    def log_evaluation(
        self,
        *,
        history: list[Mapping[str, Any]] | None = None,
        schedule: str | None = None,
        confusion: Any = None,
        spotting: Mapping[str, SpottingResult] | None = None,
        timelines: list[tuple[Any, ...]] | None = None,
        prefix: str = "val_",
    ) -> None:
        """Evaluation details as JSON and PNG artifacts, scalars as metrics.

        ``confusion``: 4x4 chunk counts (true rows, predicted columns; card, subs, soccer,
        background). ``spotting``: {method: SpottingResult}, logged as
        ``{prefix}average_map_<method>[_<class>]`` and ``metrics/{prefix}spotting.json``.
        ``timelines``: [(title, true events, spots, minutes)].
        """
        if confusion is not None:
            log_json(
                self.client, self.run_id, _tolist(confusion), f"metrics/{prefix}confusion.json"
            )
        curves: dict[str, dict[str, Any]] = {}
        for method, res in (spotting or {}).items():
            key = f"{prefix}average_map_{method}"
            values = {key: res.average_map, **{f"{key}_{c}": v for c, v in res.per_class.items()}}
            log_metrics(self.client, self.run_id, values)
            curves[method] = res.to_dict()
        if curves:
            log_json(self.client, self.run_id, curves, f"metrics/{prefix}spotting.json")
        if history:
            log_json(self.client, self.run_id, [dict(h) for h in history], "metrics/history.json")
        if not self.log_plots:
            return
        self._log_plots(prefix, history, schedule, confusion, curves, timelines)

    def _log_plots(
        self,
        prefix: str,
        history: list[Mapping[str, Any]] | None,
        schedule: str | None,
        confusion: Any,
        curves: dict[str, dict[str, Any]],
        timelines: list[tuple[Any, ...]] | None,
    ) -> None:
        source = self.data_source  # the footnote of every figure
        if history:
            fig = plots.learning_curves(history, source=source, schedule=schedule)
            log_figure(self.client, self.run_id, fig, "plots/learning_curves.png")
        if confusion is not None:
            fig = plots.confusion_matrix(confusion, source=source)
            log_figure(self.client, self.run_id, fig, f"plots/{prefix}confusion.png")
        if curves:
            fig = plots.tolerance_curve(curves, source=source)
            log_figure(self.client, self.run_id, fig, f"plots/{prefix}map_vs_tolerance.png")
        if timelines:
            fig = plots.event_timeline(timelines, source=source)
            log_figure(self.client, self.run_id, fig, "plots/timeline.png")

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self, status: str = "FINISHED", error: BaseException | None = None) -> None:
        """End the child run with ``status`` (FINISHED/KILLED/FAILED); later calls do nothing,
        and a run already ended elsewhere (the driver marked it KILLED) keeps its status."""
        if self.status is not None:
            return
        check_status(status)
        self.status = status
        with contextlib.suppress(Exception):  # the final cost, evaluation and model logging in
            log_metrics(self.client, self.run_id, self.cost(), step=self._last_step)
        if error is not None:
            msg = scrub_text(f"{type(error).__name__}: {error}")[:5000]
            with contextlib.suppress(Exception):  # ending the run matters more than the tag
                self.client.set_tag(self.run_id, TAG_ERROR, msg)
        flush_logs(self.client)  # every buffered metric reaches the run before it ends
        current = retry(self.client.get_run, self.run_id).info.status
        if current in ("RUNNING", "SCHEDULED"):
            retry(self.client.set_terminated, self.run_id, status)
        else:
            self.status = current

    def __enter__(self) -> MLflowTrialCallback:
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self.close("FINISHED")
        elif isinstance(exc, KeyboardInterrupt | SystemExit):
            self.close("KILLED", exc)
        else:
            self.close("FAILED", exc)


def _tolist(obj: Any) -> Any:
    return obj.tolist() if hasattr(obj, "tolist") else obj
