"""The Ray Tune trial: one configuration trained by the plain-PyTorch trainer.

Training batches come from the feature table through Ray Data (``tuning.stream``: read once
into memory, or streamed every epoch when the split is too large); validation halves stream one
at a time straight from Parquet. The trainer knows nothing of Tune or MLflow:
this module adapts its callbacks to ``tune.report`` (metrics plus a checkpoint every epoch) and
to the MLflow child run of the trial (``tracking.trial``).
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from avspot.search.spaces import trainer_overrides
from avspot.search.tracking.names import TAG_BUILD_ID, TAG_NODE_ID, TAG_NODE_IP
from avspot.search.tracking.wheel import build_id
from avspot.search.tuning.stream import train_feed

if TYPE_CHECKING:  # pragma: no cover
    from avspot.avmodels.trainer import Trainer
    from avspot.datasets.manifest import Manifest

CHECKPOINT_FILE = "trainer.pt"


@dataclass(frozen=True)
class TrialContext:
    """What every trial needs besides its config; travels to workers via tune.with_parameters."""

    data_uri: str
    endpoint: str | None
    metric: str
    max_epochs: int | None
    tracking_uri: str | None
    parent_run_id: str | None
    manifest: Manifest | None = None
    seed: int = 0
    fixed: dict[str, str] = field(default_factory=dict)  # `avspot search --set` overrides
    val_stride_s: float = 1.0  # per-epoch validation spotting stride (the trial's final: 1 s)
    threads: int = 0  # torch threads per trial; 0: the trial's CPUs rounded up
    build_id: str | None = None  # the driver's avspot build (tracking.wheel.build_id)


class TuneReport:
    """Reports every epoch to Tune with a checkpoint. The last epoch's report is held back until
    ``fit`` has returned (and the MLflow callback has logged the model): a scheduler may stop
    the trial as soon as it sees a report, and nothing after that report would run."""

    def __init__(self) -> None:
        self.held: tuple[dict[str, float], str] | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="avspot-final-")

    def on_epoch_end(self, epoch: int, metrics: dict[str, float], trainer: Trainer) -> None:
        from ray import tune

        report = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
        report["epoch"] = epoch
        report["finished"] = float(trainer.will_stop())
        if report["finished"]:
            trainer.save_checkpoint(os.path.join(self._dir.name, CHECKPOINT_FILE))
            self.held = (report, self._dir.name)
            return
        with tempfile.TemporaryDirectory() as d:
            trainer.save_checkpoint(os.path.join(d, CHECKPOINT_FILE))
            tune.report(report, checkpoint=tune.Checkpoint.from_directory(d))

    def flush(self) -> None:
        from ray import tune

        if self.held is not None:
            report, d = self.held
            self.held = None
            tune.report(report, checkpoint=tune.Checkpoint.from_directory(d))
        self._dir.cleanup()


def _threads(ctx: TrialContext) -> int:
    """Torch threads of this trial: $AVSPOT_TRIAL_THREADS, else the search's plan, else the
    CPUs the trial holds rounded up (Ray sets OMP_NUM_THREADS to their floor: 1 for 1.5)."""
    import ray

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    return (
        int(os.environ.get("AVSPOT_TRIAL_THREADS", "0")) or ctx.threads or max(1, math.ceil(cpus))
    )


def train_trial(config: dict[str, Any], ctx: TrialContext) -> None:
    """Tune function trainable: train ``config``, report every epoch, resume from a checkpoint."""
    import ray
    import torch
    from ray import tune

    from avspot.avmodels.train_config import TrainConfig
    from avspot.avmodels.trainer import Trainer
    from avspot.datasets.table import iter_halves

    node = ray.get_runtime_context().get_node_id()
    if ctx.build_id is not None and build_id() != ctx.build_id:
        raise RuntimeError(
            f"node {ray.util.get_node_ip_address()} ({node[:8]}) runs avspot build "
            f"{build_id()[:12]}, the driver {ctx.build_id[:12]}: install the same wheel on every "
            "node (make cluster-dist)"
        )
    overrides = {**trainer_overrides(config), **ctx.fixed}
    if ctx.max_epochs is not None and "max_epochs" not in config:
        overrides["max_epochs"] = str(ctx.max_epochs)
    overrides.setdefault("monitor", ctx.metric)
    overrides.setdefault("seed", str(ctx.seed))
    overrides.setdefault("val_stride_s", str(ctx.val_stride_s))
    cfg = TrainConfig.from_overrides(overrides)
    torch.set_num_threads(_threads(ctx))

    trainer = Trainer(cfg)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            trainer.load_checkpoint(os.path.join(d, CHECKPOINT_FILE))
    train_batches = train_feed(
        ctx.data_uri,
        ctx.manifest,
        window_frames=cfg.model.window_frames,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        endpoint=ctx.endpoint,
        max_epochs=cfg.max_epochs,
        device=trainer.device,
    )
    train_batches.start(trainer.state.epoch + 1)  # Ray Data reads while MLflow starts

    def halves(split: str) -> Any:
        # patient: a store that drops mid-search is waited for (bounded), not a failed trial
        return iter_halves(ctx.data_uri, split, endpoint=ctx.endpoint, patient=True)

    tracker = None
    if ctx.parent_run_id is not None:
        import ray

        from avspot.search.tracking.trial import MLflowTrialCallback

        held = ray.get_runtime_context().get_assigned_resources()  # for the cost metrics
        context = tune.get_context()
        tracker = MLflowTrialCallback(
            ctx.parent_run_id,
            cfg.to_dict(),
            context.get_trial_name(),
            tracking_uri=ctx.tracking_uri,
            trial_id=context.get_trial_id(),
            data_uri=ctx.data_uri,
            manifest=ctx.manifest,
            halves=halves,
            cpus=held.get("CPU", 1.0),
            gpus=held.get("GPU", 0.0),
        )
        # where this attempt runs (a restarted trial reopens its run on another node)
        placement = {
            TAG_BUILD_ID: ctx.build_id,
            TAG_NODE_IP: ray.util.get_node_ip_address(),
            TAG_NODE_ID: node,
        }
        for key, value in placement.items():
            if value:
                tracker.client.set_tag(tracker.run_id, key, value)
    reporter = TuneReport()
    callbacks: list[Any] = [reporter] if tracker is None else [tracker, reporter]
    try:
        try:
            trainer.fit(train_batches, lambda: halves("valid"), callbacks=callbacks)
        except BaseException as exc:
            if tracker is not None:
                tracker.close("FAILED", error=exc)
            raise
        if tracker is not None:
            tracker.close("FINISHED")
    finally:
        train_batches.close()
    reporter.flush()
