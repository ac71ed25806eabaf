"""The MLflow child run of one trial: a trainer callback, created inside the trial.

Per epoch it logs the trainer's numeric metrics at step = epoch. At the end of training:
the best epoch's metrics as ``best_<key>`` plus ``best_epoch``; with table halves to score, the
best checkpoint's Average-mAP per spotting method (``val_average_map_<method>``), the
mAP-vs-tolerance curve and event timelines; plots and JSON as artifacts; the best model as the
MLflow model ``model``. The run ends FINISHED after ``on_train_end``; the trainable calls
``close("FAILED", exc)`` on an exception (or uses the callback as a context manager); ``close``
is idempotent and never overwrites a status set by the driver (KILLED after an ASHA stop).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from avspot.search import plots
from avspot.search.tracking.client import (
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
from avspot.search.tracking.runs import check_status
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
    ) -> None:
        self.client = get_client(tracking_uri)
        parent = self.client.get_run(parent_run_id)
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
        run = retry(
            self.client.create_run, self.experiment_id, tags=run_tags(all_tags), run_name=run_name
        )
        self.run_id: str = run.info.run_id
        log_params(self.client, self.run_id, flatten(trial_config))
        if data_uri is not None and manifest is not None:
            log_table_input(self.client, self.run_id, data_uri, manifest)

    # -- trainer hooks --------------------------------------------------------------------------

    def on_epoch_end(self, epoch: int, metrics: Mapping[str, Any], trainer: Trainer) -> None:
        """Log this epoch's numeric metrics at step = epoch."""
        row = {k: v for k, v in metrics.items() if k != "epoch"}
        log_metrics(self.client, self.run_id, row, step=epoch)

    def on_train_end(self, result: TrainResult) -> None:
        """Best-epoch summary, evaluation artifacts and the model; the run ends FINISHED."""
        summary: dict[str, Any] = {f"best_{k}": v for k, v in result.best_metrics.items()}
        summary["best_epoch"] = result.best_epoch
        summary["epochs"] = len(result.history)
        summary["wall_s"] = result.wall_s
        log_metrics(self.client, self.run_id, summary, step=result.best_epoch)
        evaluation: dict[str, Any] = {}
        if self.halves is not None and result.model is not None:
            try:
                evaluation = self._evaluate(result)
            except Exception as exc:  # noqa: BLE001 - the trial's result stands without it
                self.client.set_tag(
                    self.run_id, TAG_EVAL_ERROR, scrub_text(f"{type(exc).__name__}: {exc}")[:5000]
                )
        self.log_evaluation(
            history=result.history,
            schedule=result.config.schedule,
            confusion=result.best_chunk.get("confusion"),
            spotting=evaluation.get("spotting"),
            timelines=evaluation.get("timelines"),
        )
        if self.log_model and result.model is not None:
            from avspot.search.tracking.pyfunc import log_spotter_model

            self.model_uri = log_spotter_model(
                self.run_id,
                self.experiment_id,
                result.model,
                result.config.model,
                step=result.best_epoch,
                example_frames=self.input_example_frames,
            )
            self.client.set_tag(self.run_id, TAG_MODEL_URI, self.model_uri)
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
        if history:
            fig = plots.learning_curves(history, schedule=schedule)
            log_figure(self.client, self.run_id, fig, "plots/learning_curves.png")
        if confusion is not None:
            fig = plots.confusion_matrix(confusion)
            log_figure(self.client, self.run_id, fig, f"plots/{prefix}confusion.png")
        if curves:
            fig = plots.tolerance_curve(curves)
            log_figure(self.client, self.run_id, fig, f"plots/{prefix}map_vs_tolerance.png")
        if timelines:
            log_figure(
                self.client, self.run_id, plots.event_timeline(timelines), "plots/timeline.png"
            )

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self, status: str = "FINISHED", error: BaseException | None = None) -> None:
        """End the child run with ``status`` (FINISHED/KILLED/FAILED); later calls do nothing,
        and a run already ended elsewhere (the driver marked it KILLED) keeps its status."""
        if self.status is not None:
            return
        check_status(status)
        self.status = status
        if error is not None:
            msg = scrub_text(f"{type(error).__name__}: {error}")[:5000]
            with contextlib.suppress(Exception):  # ending the run matters more than the tag
                self.client.set_tag(self.run_id, TAG_ERROR, msg)
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
