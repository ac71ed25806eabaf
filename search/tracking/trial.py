"""The MLflow child run of one trial: what the trial function logs, in the order it logs it.

``TrialRun(...)`` opens the run (or reopens it when the trial's process restarts: epochs up to
``logged_through`` were logged before and are skipped); ``log_epoch`` logs an epoch's numeric
metrics and the cumulative cost at step = epoch and waits until they are stored (the trial's
Tune report follows, after which a scheduler may end the process); ``log_result`` logs the
best epoch's summary, the kept epoch's full scores (``full_val_average_map``, per spotting
method), figures and JSON, and the model; ``close`` ends the run. It calls nothing back.

Compute accounting: every epoch (and once more when the run closes) the trial's cumulative
``trial_wall_s`` and the device time of the resources it holds, ``cpu_core_s`` and ``gpu_s``
(wall time x the CPUs / GPUs Ray assigned): trials that ASHA stops never reach ``log_result``,
so their cost is already recorded. Inference cost for the Pareto front: ``n_params`` of the
evaluated model and ``spot_s_per_half``, seconds of ``predict_half`` per validation half in the
final scoring. ``close`` is idempotent and never overwrites a status set by the driver (KILLED
after an ASHA stop).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from avspot.avmodels import names as N
from avspot.datasets.labels import V1, LabelSet
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
    from avspot.avmodels.train_result import TrainResult
    from avspot.avmodels.validation import SpotScorer
    from avspot.datasets.manifest import Manifest


class TrialRun:
    """One trial recorded as a child run of the search's parent run."""

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
        tags: Mapping[str, Any] | None = None,
        log_model: bool = True,
        log_plots: bool = True,
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
        self.log_model = log_model
        self.log_plots = log_plots
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

    # -- per epoch ------------------------------------------------------------------------------

    def log_epoch(
        self, epoch: int, metrics: Mapping[str, Any], *, n_params: int | None = None
    ) -> None:
        """Log this epoch's numeric metrics and the cumulative cost so far at step = epoch (and
        ``n_params`` with the first epoch logged: a stopped trial has it too), then wait until
        they are stored (through a server outage, bounded): the trial's report follows."""
        if epoch <= self.logged_through:  # logged before this trial's process restarted
            return
        row = {k: v for k, v in metrics.items() if k != N.EPOCH}
        row.update(self.cost())
        if self._last_step == 0 and n_params is not None:
            row[M_N_PARAMS] = n_params
        self._last_step = max(self._last_step, int(epoch))
        log_metrics(self.client, self.run_id, row, step=epoch)
        flush_logs(self.client)

    def log_feed(self, params: Mapping[str, Any]) -> None:
        """Which feed the trial took and why: params of the run; a restarted attempt (on
        another node, say) records its own as ``avspot.<key>`` tags (params cannot change)."""
        if self.logged_through == 0:
            log_params(self.client, self.run_id, params)
            return
        for key, value in params.items():
            retry(self.client.set_tag, self.run_id, f"avspot.{key}", str(value))

    def cost(self) -> dict[str, float]:
        """Cumulative wall time of this trial and the CPU-core and GPU seconds it held (earlier
        processes of a restarted trial included)."""
        wall = time.perf_counter() - self._t0
        now = {M_TRIAL_WALL_S: wall, M_CPU_CORE_S: wall * self.cpus, M_GPU_S: wall * self.gpus}
        return {k: v + self._cost_before.get(k, 0.0) for k, v in now.items()}

    # -- the end of training ----------------------------------------------------------------------

    def log_result(self, result: TrainResult, scores: SpotScorer | None = None) -> None:
        """The best epoch's summary; with ``scores`` (the kept epoch scored in full: every
        validation half at 1 s, every spotting method) its ``full_`` values, per-method
        Average-mAP and inference cost; figures and JSON; the model."""
        summary: dict[str, Any] = {N.best(k): v for k, v in result.best_metrics.items()}
        summary[N.BEST_EPOCH] = result.best_epoch
        summary["epochs"] = len(result.history)
        summary["wall_s"] = result.wall_s
        if result.model is not None:
            from avspot.avmodels.fusion import count_parameters

            summary[M_N_PARAMS] = count_parameters(result.model)
        log_metrics(self.client, self.run_id, summary, step=result.best_epoch)
        vocabulary = result.config.model.vocabulary
        split_shown = vocabulary.name != "v1"  # v2 events are visible or not shown
        spotting = scores.results("loose", visibility=split_shown) if scores is not None else {}
        if scores is not None and scores.halves:
            per_half = scores.predict_s / scores.halves
            log_metrics(self.client, self.run_id, {M_SPOT_S_PER_HALF: per_half})
        full = spotting.get(result.config.spot_method)
        if full is not None:  # the kept epoch scored in full: every half, 1 s stride
            tight = scores.results("tight", visibility=split_shown)[result.config.spot_method]
            full_values = {N.full(N.VAL_MAP): result.best_metrics.get(N.VAL_MAP)}  # complete
            for name, res in ((N.VAL_AVERAGE_MAP, full), (N.VAL_AVERAGE_MAP_TIGHT, tight)):
                full_values[N.full(name)] = res.average_map
                per_class = {N.of_class(N.full(name), c): v for c, v in res.per_class.items()}
                full_values.update(per_class)
                for part in ("visible", "unshown"):  # None for v1
                    full_values[f"{N.full(name)}_{part}"] = getattr(res, f"average_map_{part}")
            log_metrics(self.client, self.run_id, full_values, step=result.best_epoch)
        self.log_evaluation(
            history=result.history,
            schedule=result.config.schedule,
            confusion=result.best_chunk.get("confusion"),
            spotting=spotting or None,
            timelines=_timelines(scores),
            vocabulary=vocabulary,
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

    @contextlib.contextmanager
    def tagging_errors(self) -> Iterator[None]:
        """Run a step whose failure must not fail the trial: its error becomes the run's
        ``avspot.eval_error`` tag."""
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - the trial's result stands without it
            msg = scrub_text(f"{type(exc).__name__}: {exc}")[:5000]
            self.client.set_tag(self.run_id, TAG_EVAL_ERROR, msg)

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
        vocabulary: LabelSet = V1,
    ) -> None:
        """Evaluation details as JSON and PNG artifacts, scalars as metrics.

        ``confusion``: (C + 1)^2 chunk counts (true rows, predicted columns; the classes of
        ``vocabulary``, then background). ``spotting``: {method: SpottingResult}, logged as
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
            values = {
                key: res.average_map,
                **{N.of_class(key, c): v for c, v in res.per_class.items()},
            }
            log_metrics(self.client, self.run_id, values)
            curves[method] = res.to_dict()
        if curves:
            log_json(self.client, self.run_id, curves, f"metrics/{prefix}spotting.json")
        if history:
            log_json(self.client, self.run_id, [dict(h) for h in history], "metrics/history.json")
        if not self.log_plots:
            return
        self._log_plots(prefix, history, schedule, confusion, curves, timelines, vocabulary)

    def _log_plots(
        self,
        prefix: str,
        history: list[Mapping[str, Any]] | None,
        schedule: str | None,
        confusion: Any,
        curves: dict[str, dict[str, Any]],
        timelines: list[tuple[Any, ...]] | None,
        vocabulary: LabelSet,
    ) -> None:
        source = self.data_source  # the footnote of every figure
        names = [vocabulary.display_name(o) for o in vocabulary.outputs]
        if history:
            fig = plots.learning_curves(history, source=source, schedule=schedule)
            log_figure(self.client, self.run_id, fig, "plots/learning_curves.png")
        if confusion is not None:
            fig = plots.confusion_matrix(confusion, source=source, labels=names)
            log_figure(self.client, self.run_id, fig, f"plots/{prefix}confusion.png")
        if curves:
            fig = plots.tolerance_curve(curves, source=source)
            log_figure(self.client, self.run_id, fig, f"plots/{prefix}map_vs_tolerance.png")
        if timelines:
            fig = plots.event_timeline(timelines, source=source, vocabulary=vocabulary)
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

    def __enter__(self) -> TrialRun:
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


def _timelines(scores: SpotScorer | None) -> list[tuple[Any, ...]] | None:
    if scores is None or not scores.timelines:
        return None
    return [(t.title, t.events, t.spots, t.minutes) for t in scores.timelines]
