"""Training throughput of the seed models: forward + backward + Adam, windows per second.

    .venv/bin/python benchmarks/bench_models.py            # all configurations, ~3 min
    .venv/bin/python benchmarks/bench_models.py --iters 3 --configs netvlad64

Batch 256, T = 20 s (W = 40 frames at 2 fps), 512-d features per modality, 2 threads,
random features and multi-hot targets, BCE-with-logits loss on the 4 logits. Prints the median
time per step over ``--iters`` steps (after ``--warmup`` steps) and windows/s. Peer figures on
this machine class (sn-spotting, 2 threads): NetVLAD k=64 712 windows/s, k=512 90 windows/s,
NetVLAD++ k=64 1,114 windows/s. sn-spotting's NetVLAD feeds the raw K x D descriptor to the
classifier; the seed (LOUPE, SoccerNet v1) first projects it to 512 and gates it: both heads
are measured ("seed" and "raw").
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time

import torch

from avspot.avmodels.config import ModelConfig
from avspot.avmodels.fusion import build_model, count_parameters

CONFIGS: dict[str, dict[str, object]] = {
    "netvlad64": {"fusion": "video", "pooling": "netvlad", "clusters": 64},
    "netvlad512": {"fusion": "video", "pooling": "netvlad", "clusters": 512},
    "netrvlad64": {"fusion": "video", "pooling": "netrvlad", "clusters": 64},
    "before_fc_netvlad64": {"fusion": "before_fc", "pooling": "netvlad", "clusters": 64},
    "netvlad64_raw": {
        "fusion": "video", "pooling": "netvlad", "clusters": 64, "pool_out": None, "gating": False,
    },
    "netvlad512_raw": {
        "fusion": "video", "pooling": "netvlad", "clusters": 512, "pool_out": None,
        "gating": False,
    },
}  # fmt: skip


def bench(
    name: str, batch: int, window_s: float, dim: int, iters: int, warmup: int
) -> dict[str, float]:
    cfg = ModelConfig(window_s=window_s, video_dim=dim, audio_dim=dim, **CONFIGS[name])  # type: ignore[arg-type]
    torch.manual_seed(0)
    model = build_model(cfg).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    w = cfg.window_frames
    video = torch.randn(batch, w, dim)
    audio = torch.randn(batch, w, dim)
    target = (torch.rand(batch, 4) < 0.25).float()
    times = []
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(video, audio), target)
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    step = statistics.median(times)
    return {"params": count_parameters(model), "step_s": step, "windows_s": batch / step}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--window-s", type=float, default=20.0)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(
        f"# forward+backward+Adam, batch {args.batch}, W={round(args.window_s * 2)} frames, "
        f"{args.dim}-d per modality, {args.threads} threads, median of {args.iters} steps"
    )
    print(f"{'config':<22} {'params':>13} {'s/step':>8} {'windows/s':>10}")
    for name in args.configs:
        r = bench(name, args.batch, args.window_s, args.dim, args.iters, args.warmup)
        print(f"{name:<22} {r['params']:>13,} {r['step_s']:>8.3f} {r['windows_s']:>10.0f}")
    print("peers (sn-spotting, 2 threads): NetVLAD k=64 712, k=512 90, NetVLAD++ k=64 1,114")
    print("reproduce: .venv/bin/python benchmarks/bench_models.py " + shlex.join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
