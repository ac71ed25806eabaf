"""A Ray Tune trial, top to bottom: one configuration from its typed config to its logged model.

``train_trial`` is the Tune function trainable. It builds the trial's ``TrainConfig`` (the
driver's validated base config with the space's typed suggestions merged in), opens the trial's
MLflow child run, trains epoch by epoch (each epoch logged to MLflow, then reported to Tune with
a checkpoint), scores the kept epoch in full on the validation split, logs the model, closes
the run and reports the last epoch. The last report is held until the model is logged: a
scheduler may stop a trial as soon as it sees a report, and nothing after that report would run.
A trial that ASHA stops earlier ends there; the driver marks its run KILLED
(``tuning.callbacks.EndStoppedRuns``). Nothing in a trial reads the test split.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from avspot.avmodels import names as N
from avspot.search.tracking.names import TAG_BUILD_ID, TAG_NODE_ID, TAG_NODE_IP
from avspot.search.tracking.wheel import build_id
from avspot.search.tuning.feed import train_feed

if TYPE_CHECKING:  # pragma: no cover
    from avspot.avmodels.train_config import TrainConfig
    from avspot.avmodels.train_result import EpochEnd
    from avspot.avmodels.trainer import Trainer
    from avspot.datasets.halves import Half
    from avspot.datasets.manifest import Manifest
    from avspot.search.tracking.trial import TrialRun

CHECKPOINT_FILE = "trainer.pt"
TIMELINE_HALVES = 2  # validation halves whose spots the trial's timeline figure shows


@dataclass(frozen=True)
class TrialContext:
    """What every trial needs besides its suggestions; pickled to the workers by
    ``tune.with_parameters``. ``base`` is the driver's validated config (search metric, seed,
    validation stride, max_epochs); ``fixed`` (``avspot search --set``, typed) wins over the
    space's suggestions."""

    base: TrainConfig
    data_uri: str
    metric: str
    endpoint: str | None = None
    tracking_uri: str | None = None
    parent_run_id: str | None = None
    manifest: Manifest | None = None
    fixed: dict[str, Any] = field(default_factory=dict)
    threads: int = 0  # torch threads per trial; 0: the trial's CPUs rounded up
    build_id: str | None = None  # the driver's avspot build (tracking.wheel.build_id)


def trial_config(config: dict[str, Any], ctx: TrialContext) -> TrainConfig:
    """The trial's config: the base, the space's suggestions (search-only ``_`` keys dropped),
    then the fixed ``--set`` values. Typed values throughout: nothing is parsed here."""
    suggested = {k: v for k, v in config.items() if not k.startswith("_")}
    return ctx.base.merge(suggested).merge(ctx.fixed)


def train_trial(config: dict[str, Any], ctx: TrialContext) -> None:
    """Tune function trainable: train ``config``, log and report every epoch, resume from a
    checkpoint, score and log the kept epoch."""
    import torch
    from ray import tune

    from avspot.avmodels.fusion import count_parameters
    from avspot.avmodels.trainer import Trainer
    from avspot.avmodels.validation import score_spots
    from avspot.datasets.table import iter_halves

    _check_build(ctx.build_id)
    cfg = trial_config(config, ctx)
    torch.set_num_threads(_threads(ctx))
    cfg = cfg.merge({"device": _device(cfg)})  # no GPU assigned: the CPU, whatever is visible
    trainer = Trainer(cfg)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            trainer.load_checkpoint(os.path.join(d, CHECKPOINT_FILE))
    n_params = count_parameters(trainer.eval_model())
    feed = train_feed(
        ctx.data_uri,
        ctx.manifest,
        window_frames=cfg.model.window_frames,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        endpoint=ctx.endpoint,
        max_epochs=cfg.max_epochs,
        device=trainer.device,
        gpu_share=_held("GPU"),
        n_params=count_parameters(trainer.model),
    )
    feed.start(trainer.state.epoch + 1)  # the split reaches this machine while the run opens

    def valid_halves() -> Iterator[Half]:
        # patient: a store that drops mid-search is waited for (bounded), not a failed trial
        return iter_halves(ctx.data_uri, "valid", endpoint=ctx.endpoint, patient=True)

    run = _open_run(ctx, cfg) if ctx.parent_run_id is not None else None
    try:
        choice = feed.wait()  # which feed, and why: the trial's params
        if run is not None:
            run.log_feed(choice.params())
        end = None
        for end in trainer.epochs(feed, valid_halves):
            if run is not None:
                run.log_epoch(end.epoch, end.metrics, n_params=n_params)
            if end.last:
                break  # reported once the model is logged
            _report(end, trainer, ctx.metric)
        result = trainer.result()
        if run is not None:
            scores = None
            if result.model is not None:
                with run.tagging_errors():  # the trial's result stands without its full score
                    scores = score_spots(
                        result.model,
                        valid_halves(),
                        cfg.model.window_frames,
                        keep=TIMELINE_HALVES,
                    )
            run.log_result(result, scores)
            run.close("FINISHED")
    except BaseException as exc:
        if run is not None:
            run.close("FAILED", exc)
        raise
    finally:
        feed.close()
    if end is not None:
        _report(end, trainer, ctx.metric)


def _report(end: EpochEnd, trainer: Trainer, metric: str) -> None:
    """One Tune report: the epoch's numeric metrics, ``epoch``, ``finished`` (1 on the epoch
    where the trainer itself ends: ASHA-stopped trials never send it), ``best_<metric>`` (the
    running best over the trial's epochs, restarts included: the history is checkpointed) and
    the checkpoint."""
    from ray import tune

    values = {k: float(v) for k, v in end.metrics.items() if isinstance(v, int | float)}
    seen = [h[metric] for h in trainer.history if metric in h and not math.isnan(h[metric])]
    values.update(
        {
            N.EPOCH: end.epoch,
            "finished": float(end.last),
            N.best(metric): max(seen, default=float("nan")),
            N.BEST_EPOCH: end.best_epoch,
        }
    )
    with tempfile.TemporaryDirectory(prefix="avspot-checkpoint-") as d:
        trainer.save_checkpoint(os.path.join(d, CHECKPOINT_FILE))
        tune.report(values, checkpoint=tune.Checkpoint.from_directory(d))


def _open_run(ctx: TrialContext, cfg: TrainConfig) -> TrialRun:
    """The trial's MLflow child run, tagged with where this attempt runs (a restarted trial
    reopens its run on another node) and the resources it holds (for the cost metrics)."""
    import ray
    from ray import tune

    from avspot.search.tracking.trial import TrialRun

    assert ctx.parent_run_id is not None
    held = ray.get_runtime_context().get_assigned_resources()
    context = tune.get_context()
    run = TrialRun(
        ctx.parent_run_id,
        cfg.to_dict(),
        context.get_trial_name(),
        tracking_uri=ctx.tracking_uri,
        trial_id=context.get_trial_id(),
        data_uri=ctx.data_uri,
        manifest=ctx.manifest,
        cpus=held.get("CPU", 1.0),
        gpus=held.get("GPU", 0.0),
    )
    placement = {
        TAG_BUILD_ID: ctx.build_id,
        TAG_NODE_IP: ray.util.get_node_ip_address(),
        TAG_NODE_ID: ray.get_runtime_context().get_node_id(),
    }
    for key, value in placement.items():
        if value:
            run.client.set_tag(run.run_id, key, value)
    return run


def _held(resource: str) -> float:
    """How much of ``resource`` (CPU, GPU) Ray assigned to this trial."""
    import ray

    return float(ray.get_runtime_context().get_assigned_resources().get(resource, 0.0))


def _device(cfg: TrainConfig) -> str:
    """The trial's device: with ``device=auto``, CUDA only when Ray assigned the trial a GPU
    (Ray does not hide the cards from a trial that asked for none: it would use one unreserved
    and account no GPU time); an explicit device is taken as given."""
    if cfg.device != "auto":
        return cfg.device
    return "auto" if _held("GPU") > 0 else "cpu"


def _check_build(expected: str | None) -> None:
    """A node that joined with another avspot than the driver's fails the trial at once."""
    if expected is None or build_id() == expected:
        return
    import ray

    node = ray.get_runtime_context().get_node_id()
    raise RuntimeError(
        f"node {ray.util.get_node_ip_address()} ({node[:8]}) runs avspot build "
        f"{build_id()[:12]}, the driver {expected[:12]}: install the same wheel on every "
        "node (make cluster-dist)"
    )


def _threads(ctx: TrialContext) -> int:
    """Torch threads of this trial: $AVSPOT_TRIAL_THREADS, else the search's plan, else the
    CPUs the trial holds rounded up (Ray sets OMP_NUM_THREADS to their floor: 1 for 1.5)."""
    cpus = _held("CPU") or 1.0
    return (
        int(os.environ.get("AVSPOT_TRIAL_THREADS", "0")) or ctx.threads or max(1, math.ceil(cpus))
    )
