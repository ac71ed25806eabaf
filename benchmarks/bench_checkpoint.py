"""What a trial's per-epoch checkpoint weighs: every copy kept, against what resuming needs.

    .venv/bin/python benchmarks/bench_checkpoint.py                       # paper k=512 before_fc
    .venv/bin/python benchmarks/bench_checkpoint.py --fusion video --clusters 64 --save

Builds the trainer of one configuration (random weights, one Adam step on a random batch so
that the optimizer holds its moments), then reports the bytes of the tensors in a checkpoint
(``Trainer.checkpoint``) on an epoch that improved (the best weights are the model's) and on one
that did not (the best epoch's weights, and for the step schedule its Adam state, kept too),
against the former format that always held model, best model and both Adam states. ``--save``
also writes both with torch.save and prints the file sizes. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any


def tensor_bytes(obj: Any) -> int:
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fusion", default="before_fc")
    ap.add_argument("--pooling", default="netvlad")
    ap.add_argument("--clusters", type=int, default=512)
    ap.add_argument("--schedule", default="step", choices=["step", "cosine", "plateau"])
    ap.add_argument("--save", action="store_true", help="also torch.save both checkpoints")
    args = ap.parse_args(argv)

    import torch

    from avspot.avmodels.fusion import count_parameters
    from avspot.avmodels.train_config import TrainConfig
    from avspot.avmodels.trainer import Trainer

    torch.set_num_threads(2)
    cfg = TrainConfig().merge(
        {"fusion": args.fusion, "pooling": args.pooling, "clusters": args.clusters,
         "schedule": args.schedule, "batch_size": 2, "device": "cpu"}
    )  # fmt: skip
    trainer = Trainer(cfg)
    w = cfg.model.window_frames
    batch = {
        "video": torch.randn(2, w, cfg.model.video_dim),
        "audio": torch.randn(2, w, cfg.model.audio_dim),
        "targets": torch.zeros(2, 4),
    }
    trainer.train_epoch(1, lambda epoch: [batch])  # Adam now holds both moments
    trainer.state.epoch = trainer.state.best_epoch = 1
    trainer.best_optim_state = trainer.optimizer.state_dict()
    improved = trainer.checkpoint()
    trainer.state.epoch = 2  # an epoch that did not improve: the best copies differ
    worse = trainer.checkpoint()
    params = count_parameters(trainer.model)
    every = tensor_bytes(improved["model"]) * 2 + tensor_bytes(improved["optimizer"]) * 2
    print(
        f"config: {args.fusion} {args.pooling} k={args.clusters}, schedule {args.schedule}: "
        f"{params:,} parameters (random weights; data: none)"
    )
    print(f"former checkpoint (model, best model, both Adam states): {every / 1e9:6.2f} GB")
    print(
        f"now, an epoch that improved (model, Adam):                {tensor_bytes(improved) / 1e9:6.2f} GB"
    )
    print(
        f"now, an epoch that did not (best copies kept as needed):  {tensor_bytes(worse) / 1e9:6.2f} GB"
    )
    if args.save:
        with tempfile.TemporaryDirectory(prefix="avspot-bench-ckpt-") as tmp:
            for name, payload in (("improved", improved), ("worse", worse)):
                path = Path(tmp) / f"{name}.pt"
                torch.save(payload, path)
                print(f"torch.save {name}: {path.stat().st_size / 1e9:.2f} GB on disk")
    print(
        f"reproduce: {sys.executable} benchmarks/bench_checkpoint.py "
        + " ".join(argv or sys.argv[1:])
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
