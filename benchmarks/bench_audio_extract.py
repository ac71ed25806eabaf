"""Audio feature extraction speed: media minutes per CPU-second (and per GPU-second with CUDA).

    .venv/bin/python benchmarks/bench_audio_extract.py                  # 5 media minutes
    .venv/bin/python benchmarks/bench_audio_extract.py --minutes 1      # quick smoke run

Generates a broadcast-like half (48 kHz stereo AAC in Matroska with a tiny video stream, tones
and noise), random VGGish weights, then times each stage (decode + resample, log-mel front end,
network) and the whole ``extract_audio`` run. CPU-seconds are ``time.process_time()`` (all threads
of this process); wall seconds are ``time.perf_counter()``. A 45-minute SoccerNet half is 5400
chunks; a game is two halves. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
import time

import numpy as np


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def _broadcast_audio(minutes: float, sr: int = 48000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(minutes * 60 * sr)
    t = np.arange(n) / sr
    crowd = 0.05 * rng.standard_normal(n)
    voice = 0.15 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 0.3 * t) > 0)
    whistle = 0.2 * np.sin(2 * np.pi * 3200 * t) * ((t % 37) < 0.8)
    x = (crowd + voice + whistle).astype(np.float32)
    return np.stack([x, 0.9 * x], axis=1)  # (n, 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="media minutes to extract")
    parser.add_argument("--batch-size", type=int, default=None, help="chunks per forward pass")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA if any)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)

    import av
    import torch

    from avspot.datasets.audio import media, melspec, vggish
    from avspot.datasets.audio.extract import (
        DEFAULT_BATCH_SIZE,
        extract_audio,
        format_summary,
        resolve_device,
    )

    batch = args.batch_size or DEFAULT_BATCH_SIZE
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    command = [
        ".venv/bin/python",
        "benchmarks/bench_audio_extract.py",
        "--minutes",
        f"{args.minutes:g}",
    ]
    command += ["--batch-size", str(batch)]
    command += ["--device", args.device] if args.device else []
    command += ["--threads", str(args.threads)] if args.threads else []
    print(f"reproduce: {shlex.join(command)}")
    print(
        f"machine: {os.cpu_count()} CPUs, torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads, PyAV {av.__version__}, Python "
        f"{platform.python_version()}, device {device}"
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    )

    with tempfile.TemporaryDirectory(prefix="bench_audio_") as tmp:
        game = os.path.join(tmp, "sn", "league", "2016-2017", "game")
        os.makedirs(game)
        path = os.path.join(game, "1.mkv")
        _, w, _ = _timed(
            lambda: media.write_audio(path, _broadcast_audio(args.minutes), 48000, video=True)
        )
        chunks = int(args.minutes * 120)
        np.save(
            os.path.join(game, "1_ResNET_PCA512.npy"),
            np.zeros((chunks, 512), np.float32),  # the video's frame count: aligned output
        )
        weights = os.path.join(tmp, "vggish_random.pt")
        torch.save(vggish.random_state_dict(0), weights)
        print(
            f"input: {args.minutes:g} media min, 48 kHz stereo AAC in Matroska "
            f"({os.path.getsize(path) / 1e6:.1f} MB, written in {w:.1f}s); {chunks} chunks"
        )

        audio, w, c = _timed(lambda: media.decode_audio(path))
        print(
            f"decode + resample to 16 kHz mono: {w:.2f}s wall, {c:.2f} CPU-s "
            f"({args.minutes / max(c, 1e-9):.1f} media min per CPU-second)"
        )

        def front_end():
            return [
                melspec.log_mel_chunks(audio[i * 8000 : (i + batch) * 8000], device=device)
                for i in range(0, melspec.num_chunks(len(audio)), batch)
            ]

        mels, w, c = _timed(front_end)
        print(
            f"log-mel front end: {w:.2f}s wall, {c:.2f} CPU-s "
            f"({args.minutes / max(c, 1e-9):.1f} media min per CPU-second)"
        )

        net = vggish.load_vggish(weights, device)
        vggish.embed(net, mels[0])  # warm-up (kernels, allocator)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            start_ev, end_ev = (
                torch.cuda.Event(enable_timing=True),
                torch.cuda.Event(enable_timing=True),
            )
            start_ev.record()
        _, w, c = _timed(lambda: [vggish.embed(net, m).cpu() for m in mels])
        line = f"network (conv1..conv4_2 + GAP, batch {batch}): {w:.2f}s wall, {c:.2f} CPU-s"
        if device.type == "cuda":
            end_ev.record()
            torch.cuda.synchronize(device)
            gpu_s = start_ev.elapsed_time(end_ev) / 1000
            line += f", {gpu_s:.2f} GPU-s ({args.minutes / gpu_s:.1f} media min per GPU-second)"
        else:
            line += f" ({args.minutes / max(c, 1e-9):.2f} media min per CPU-second)"
        print(line)

        out = os.path.join(tmp, "out")
        summary = extract_audio(
            [game], weights, out, device=args.device, batch_size=batch, progress=False
        )
        print(f"extract_audio end to end: {format_summary(summary)}")
        rate = summary["media_minutes_per_cpu_second"]
        print(
            f"==> {rate:.2f} media minutes per CPU-second, "
            f"{summary['media_minutes'] / summary['seconds']:.2f} media minutes per wall-second"
            + (" (= per GPU-second, one GPU held)" if device.type == "cuda" else "")
        )
        half_cpu_s = 45 / rate
        print(
            f"    a 45-min half: ~{half_cpu_s:.0f} CPU-s; 500 games (1000 halves): "
            f"~{1000 * half_cpu_s / 3600:.0f} CPU-hours"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
