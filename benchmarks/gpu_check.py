"""The GPU path, measured: training throughput, spotting, the feed into a GPU trial, utilisation.

    make gpu-check                      # or: .venv/bin/python benchmarks/gpu_check.py [--quick]

On a machine with a CUDA GPU it prints, with the card's name:
1. training windows/s (forward + backward + Adam, batch 256, T = 20 s, 512-d per modality) of
   NetVLAD k=64 and k=512, with the seed's head (512-wide projection + gating) and the raw head
   (sn-spotting's), in fp32 and in bf16 autocast (the trainer's default on the GPU);
2. spotting seconds per 45-min half (5,400 frames, one window per second, ``predict_half``);
3. the feed into a GPU trial: a synthetic table's train split held on the GPU
   (``MemoryFeed``/``ChunkBatches`` on the device), windows/s of training with it and the share
   of the time the GPU waits for the next batch;
4. the GPU's utilisation (nvidia-smi, sampled every 0.2 s) during a 2-epoch search trial
   (``avspot search`` on local Ray, one trial holding the GPU).
Without a GPU it says so and exits 0. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CONFIGS = {
    "NetVLAD k=64 seed head": {"clusters": 64},
    "NetVLAD k=512 seed head": {"clusters": 512},
    "NetVLAD k=64 raw head": {"clusters": 64, "pool_out": None, "gating": False},
    "NetVLAD k=512 raw head": {"clusters": 512, "pool_out": None, "gating": False},
}


def _sync() -> None:
    import torch

    torch.cuda.synchronize()


def train_rate(overrides: dict, bf16: bool, iters: int, batch: int = 256) -> float:
    """Windows/s of forward + backward + Adam on random batches already on the GPU."""
    import torch

    from avspot.avmodels.config import ModelConfig
    from avspot.avmodels.fusion import build_model

    cfg = ModelConfig(fusion="video", pooling="netvlad", window_s=20.0, **overrides)
    model = build_model(cfg).cuda().train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    video = torch.randn(batch, cfg.window_frames, 512, device="cuda")
    target = (torch.rand(batch, 4, device="cuda") < 0.25).float()
    times = []
    for i in range(iters + 3):
        _sync()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(model(video, None), target)
        loss.backward()
        opt.step()
        _sync()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


def spot_seconds(clusters: int) -> float:
    """Seconds to spot one 45-min half (5,400 frames, 1 s stride) on the GPU."""
    import numpy as np
    import torch

    from avspot.avmodels.config import ModelConfig
    from avspot.avmodels.fusion import build_model
    from avspot.avmodels.spotting import predict_half
    from avspot.datasets.halves import Half

    model = build_model(ModelConfig(fusion="before_fc", clusters=clusters)).cuda().eval()
    rng = np.random.default_rng(0)
    feats = [rng.standard_normal((5400, 512)).astype(np.float32) for _ in range(2)]
    half = Half("g", 1, "test", 2.0, feats[0], feats[1])
    predict_half(model, half)  # warm-up
    times = []
    for _ in range(3):
        _sync()
        t0 = time.perf_counter()
        predict_half(model, half)
        _sync()
        times.append(time.perf_counter() - t0)
    del torch
    return statistics.median(times)


def feed_rate(table: str, epochs: int = 2) -> tuple[float, float]:
    """(windows/s, share of time waiting for data) of training fed from the GPU-held split."""
    import torch

    from avspot.avmodels.train_config import TrainConfig
    from avspot.avmodels.trainer import Trainer
    from avspot.search.tuning.stream import FeedSpec, MemoryFeed

    cfg = TrainConfig.from_overrides({"fusion": "before_fc", "clusters": "64", "batch_size": "256"})
    trainer = Trainer(cfg)
    feed = MemoryFeed(FeedSpec(table, cfg.model.window_frames, 256, 0), trainer.device)
    feed.batches()  # the one read, outside the timing
    wait = total = 0.0
    n = 0
    crit = torch.nn.BCEWithLogitsLoss()
    for epoch in range(1, epochs + 1):
        it = iter(feed(epoch))
        while True:
            _sync()
            t0 = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                break
            _sync()
            t1 = time.perf_counter()
            trainer.optimizer.zero_grad(set_to_none=True)
            with torch.autocast(
                "cuda", dtype=trainer.amp_dtype, enabled=trainer.amp_dtype is not None
            ):
                loss = crit(trainer.model(batch["video"], batch["audio"]), batch["targets"])
            loss.backward()
            trainer.optimizer.step()
            _sync()
            t2 = time.perf_counter()
            wait += t1 - t0
            total += t2 - t0
            n += len(batch["targets"])
    return n / total, wait / total


def search_utilisation(table: str, tmp: Path) -> tuple[float, float, float]:
    """(median, mean, max) GPU utilisation in % during a 2-epoch one-trial search."""
    from avspot.search.tuning.tuner import SearchOptions, run_search

    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if out.returncode == 0 and out.stdout.strip():
                samples.append(float(out.stdout.split()[0]))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        run_search(
            SearchOptions(
                data=table, space="smoke", trials=1, max_epochs=2, gpus_per_trial=1.0,
                storage=str(tmp / "rr"), experiment="gpu-check", tracking=False,
                register=False, out=io.StringIO(),
            )
        )  # fmt: skip
    finally:
        stop.set()
        sampler.join()
    busy = [s for s in samples if s > 0] or [0.0]
    return statistics.median(samples or [0.0]), statistics.mean(busy), max(samples or [0.0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps, a smaller table")
    ap.add_argument("--table", default=None, help="feature table for 3-4 (default: synthesize)")
    args = ap.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("gpu-check: no CUDA GPU on this machine (torch.cuda.is_available() is False); "
              "nothing to measure. Run it where a GPU is.")  # fmt: skip
        return 0
    props = torch.cuda.get_device_properties(0)
    print(f"device: {props.name}, {props.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, "
          f"CUDA {torch.version.cuda}, bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}")  # fmt: skip
    iters = 5 if args.quick else 20
    print("\n1. training windows/s (batch 256, T = 20 s, 512-d), fp32 / bf16:")
    for name, overrides in CONFIGS.items():
        fp32 = train_rate(overrides, False, iters)
        bf16 = train_rate(overrides, True, iters)
        print(f"   {name:<24} {fp32:9.0f} / {bf16:9.0f}  (bf16 {bf16 / fp32:.2f}x)")
    print("\n2. spotting a 45-min half (5,400 frames, 1 s stride), before_fc:")
    for k in (64, 512):
        print(f"   NetVLAD k={k:<4} {spot_seconds(k):.3f} s")
    from avspot.datasets.synth import synthesize

    with tempfile.TemporaryDirectory(prefix="avspot-gpu-check-") as tmp:
        table = args.table
        if table is None:
            table = str(Path(tmp) / "table")
            games = 8 if args.quick else 40
            synthesize(table, games=games, seed=0, half_minutes=45.0)
        rate, waiting = feed_rate(table)
        print(f"\n3. feed into a GPU trial (split held on the GPU, before_fc k=64, bf16): "
              f"{rate:.0f} windows/s, the GPU waits for data {waiting:.1%} of the time")  # fmt: skip
        if shutil.which("nvidia-smi"):
            med, mean, peak = search_utilisation(table, Path(tmp))
            print(f"\n4. GPU utilisation during a 2-epoch search trial: median {med:.0f}%, "
                  f"mean while busy {mean:.0f}%, max {peak:.0f}%")  # fmt: skip
        else:
            print("\n4. nvidia-smi not found: utilisation not sampled")
    print(
        f"\nreproduce: {sys.executable} benchmarks/gpu_check.py " + " ".join(argv or sys.argv[1:])
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
