"""Sliding-window inference over a 45-min half: shared per-frame work vs independent windows.

    .venv/bin/python benchmarks/bench_sliding.py                    # every configuration
    .venv/bin/python benchmarks/bench_sliding.py --configs netvlad64_raw --strides 1

A half of N = 5400 frames of 512-d features, 20 s windows (W = 40 frames at 2 fps), strides of
2 frames (1 s, the seed's spotting) and 1 frame (one window per frame, 5,400 windows; the
peers' setting), 2 threads. "independent" scores every window with ``model(batch)`` in batches
of 256 strided views of the edge-padded half (no materialised (windows x W x D) tensor either);
"shared" is ``model.forward_sequence``. Each measurement runs in its own process so that its
peak resident memory (ru_maxrss, whole process, torch and model included) is its own; "+mem" is
the peak minus the resident memory just before the timed call; "cpu s" is process CPU time
(all threads), a steadier figure than wall time on a shared machine. Both outputs are compared.

Heads: "raw" is sn-spotting's (the K x D descriptor straight into the classifier, no gating);
"seed" is LOUPE's as in the seed (projection to 512 + context gating). With the seed head the
projection costs K x D x 512 multiply-adds per window whichever way windows are scored, which
bounds that speedup near 1 + 2W/512; the raw (and any gating-free) head folds the classifier
into the pooling and never forms a window descriptor.

Peer figures on this machine class (sn-spotting, one window per frame, 2 threads): NetVLAD
k=64 1.5 s / 0.84 GB peak, k=512 11.3 s / 1.8 GB peak; NetVLAD++ k=64 1.0 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS: dict[str, dict[str, object]] = {
    "netvlad64_raw": {"pooling": "netvlad", "clusters": 64, "pool_out": None, "gating": False},
    "netvlad512_raw": {"pooling": "netvlad", "clusters": 512, "pool_out": None, "gating": False},
    "netrvlad64_raw": {"pooling": "netrvlad", "clusters": 64, "pool_out": None, "gating": False},
    "netvlad64_seed": {"pooling": "netvlad", "clusters": 64},
    "netvlad512_seed": {"pooling": "netvlad", "clusters": 512},
    "netrvlad64_seed": {"pooling": "netrvlad", "clusters": 64},
}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(config: str, method: str, stride: int, args: argparse.Namespace, out: str) -> None:
    """Score one half with one method; print a JSON line, save the logits to ``out``."""
    import torch

    from avspot.avmodels.config import ModelConfig
    from avspot.avmodels.fusion import build_model
    from avspot.avmodels.sliding import edge_pad, num_windows

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = ModelConfig(video_dim=args.dim, **CONFIGS[config])  # type: ignore[arg-type]
    model = build_model(cfg).eval()
    w = cfg.window_frames
    x = torch.randn(args.frames, args.dim, generator=torch.Generator().manual_seed(1))

    def independent(seq: torch.Tensor) -> torch.Tensor:
        n = num_windows(seq.shape[0], stride)
        view = edge_pad(seq, w).unfold(0, w, stride)[:n].transpose(1, 2)  # (n, W, D) view
        with torch.no_grad():
            return torch.cat([model(view[i : i + args.batch]) for i in range(0, n, args.batch)])

    def shared(seq: torch.Tensor) -> torch.Tensor:
        return model.forward_sequence(seq, None, w, stride)

    run = independent if method == "independent" else shared
    run(x[:300])  # warm-up
    times, cpu, before = [], [], _rss_bytes()
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        logits = run(x)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    torch.save(logits, out)
    mid = len(times) // 2
    print(
        json.dumps(
            {"s": sorted(times)[mid], "cpu": sorted(cpu)[mid], "peak": peak, "before": before}
        )
    )


def measure(config: str, method: str, stride: int, argv: list[str], out: str) -> dict:
    cmd = [sys.executable, __file__, *argv, "--child", config, method, str(stride), out]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--strides", nargs="+", type=int, default=[2, 1])
    p.add_argument("--frames", type=int, default=5400)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--child", nargs=4, metavar=("CONFIG", "METHOD", "STRIDE", "OUT"))
    args = p.parse_args(argv)
    if args.child:
        config, method, stride, out = args.child
        child(config, method, int(stride), args, out)
        return 0
    import torch

    shared_argv = [
        f"--frames={args.frames}", f"--dim={args.dim}", f"--batch={args.batch}",
        f"--repeats={args.repeats}", f"--threads={args.threads}",
    ]  # fmt: skip
    print(
        f"# one half: N={args.frames} frames, {args.dim}-d, W=40 (20 s at 2 fps), "
        f"{args.threads} threads, median of {args.repeats}; peak = process max RSS"
    )
    head = (
        f"{'config':<16} {'S':>2} {'windows':>7} | {'indep s':>7} {'cpu s':>6} {'peak GB':>7}"
        f" {'+mem':>5} | {'shared s':>8} {'cpu s':>6} {'peak GB':>7} {'+mem':>5} |"
        f" {'speedup':>7} {'cpu':>6} {'max|diff|':>9}"
    )
    print(head)
    print("-" * len(head))
    gb = 1 << 30
    with tempfile.TemporaryDirectory() as tmp:
        for config in args.configs:
            for stride in args.strides:
                ind_out, sh_out = str(Path(tmp, "ind.pt")), str(Path(tmp, "sh.pt"))
                ind = measure(config, "independent", stride, shared_argv, ind_out)
                sh = measure(config, "shared", stride, shared_argv, sh_out)
                a, b = torch.load(ind_out), torch.load(sh_out)
                diff = (a - b).abs().max().item()
                print(
                    f"{config:<16} {stride:>2} {a.shape[0]:>7} | {ind['s']:>7.2f} "
                    f"{ind['cpu']:>6.2f} {ind['peak'] / gb:>7.2f} "
                    f"{(ind['peak'] - ind['before']) / gb:>5.2f} | {sh['s']:>8.2f} "
                    f"{sh['cpu']:>6.2f} {sh['peak'] / gb:>7.2f} "
                    f"{(sh['peak'] - sh['before']) / gb:>5.2f} | "
                    f"{ind['s'] / sh['s']:>6.1f}x {ind['cpu'] / sh['cpu']:>5.1f}x {diff:>9.1e}",
                    flush=True,
                )
    print(
        "peers (sn-spotting, stride 1, 2 threads): NetVLAD k=64 1.5 s / 0.84 GB, "
        "k=512 11.3 s / 1.8 GB; NetVLAD++ k=64 1.0 s"
    )
    print("reproduce: .venv/bin/python benchmarks/bench_sliding.py " + shlex.join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
