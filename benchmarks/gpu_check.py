"""The GPU path, measured on one CUDA GPU with torch, numpy and pyarrow only (no Ray, MLflow, Optuna).

    make gpu-check-bundle                                     # here: gpu_bundle/ (its README.md)
    bash gpu_bundle/run.sh --expect-gpu --out gpu_check.json  # there: installs the wheels, runs this
    .venv/bin/python benchmarks/gpu_check.py [--quick] [--out F]   # or from a checkout's .venv

With the card, driver, CUDA, torch and Python versions, and peak GPU memory of each configuration:
1. training windows/s (forward + backward + Adam, batch 256, T = 20 s, 512-d, random features):
   NetVLAD k=64 / k=512, seed head (projection + gating) and raw head, before_fc and early_1024 at
   k=512; fp32, TF32, bf16 autocast; CUDA events over fixed step counts after a warm-up;
2. spotting seconds per 45-min half (5,400 frames, 1 s stride, ``predict_half``);
3. the feed into a GPU trial: ``ChunkBatches`` over a synthetic train split on the GPU, on the
   host, and the trial's ``StreamFeed`` (forced: blocks of a quarter of the split from the node
   cache, each copied to the card as it is cut): windows/s and the data step's share of step time,
   the time the GPU waits for its batch (CUDA events, warm-up excluded);
4. the whole ``Trainer`` for two epochs on a table written by ``avspot.datasets.synth``.
Prints each figure as measured, writes all to ``--out`` (JSON). All data is SYNTHETIC.

Without a CUDA device it says so, runs a tiny CPU smoke of every step (so the script itself is
tested) and exits 0; with ``--expect-gpu`` it exits 1 instead. A failed section: exit 1, the other
figures kept. Budget: fixed step counts, well under 6 minutes on one H200 (``--quick``: less).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avspot.avmodels.config import ModelConfig
from avspot.avmodels.data import ChunkBatches
from avspot.avmodels.device import to_tensor
from avspot.avmodels.fusion import build_model, count_parameters
from avspot.avmodels.spotting import predict_half
from avspot.datasets.halves import Half
from avspot.datasets.synth import synthesize
from avspot.datasets.table import read_halves

SCHEMA = "avspot-gpu-check/1"
DATA_NOTE = "SYNTHETIC: random tensors (1-2) and avspot.datasets.synth tables (3-4), not SoccerNet"


@dataclass(frozen=True)
class Sizes:
    """Step counts and data sizes of one run mode."""

    batch: int
    warmup: int
    steps: int
    clusters_cap: int | None  # the CPU smoke shrinks k to keep the step tiny
    spot_frames: int
    spot_repeats: int
    games: int  # synthetic table for 3-4
    half_minutes: float
    feed_warmup: int
    feed_steps: int


SIZES = {
    "full": Sizes(256, 5, 30, None, 5400, 3, 16, 45.0, 10, 60),
    "quick": Sizes(256, 3, 10, None, 5400, 1, 6, 45.0, 5, 20),
    "cpu-smoke": Sizes(4, 1, 1, 8, 240, 1, 4, 2.0, 1, 2),
}

TRAIN_CONFIGS: dict[str, dict[str, Any]] = {
    "video netvlad k=64 seed head": {"fusion": "video", "clusters": 64},
    "video netvlad k=64 raw head": {"fusion": "video", "clusters": 64, "pool_out": None, "gating": False},
    "video netvlad k=512 seed head": {"fusion": "video", "clusters": 512},
    "video netvlad k=512 raw head": {"fusion": "video", "clusters": 512, "pool_out": None, "gating": False},
    "before_fc netvlad k=512 seed head": {"fusion": "before_fc", "clusters": 512},
    "early_1024 netvlad k=512 seed head": {"fusion": "early_1024", "clusters": 512},
}  # fmt: skip
SPOT_CONFIGS: dict[str, dict[str, Any]] = {
    "before_fc netvlad k=64 seed head": {"fusion": "before_fc", "clusters": 64},
    "before_fc netvlad k=512 seed head": {"fusion": "before_fc", "clusters": 512},
    "before_fc netvlad k=512 raw head": {"fusion": "before_fc", "clusters": 512, "pool_out": None, "gating": False},
}  # fmt: skip
FEED_MODEL = {"fusion": "before_fc", "clusters": 64}  # a typical trial: two modalities, seed head
TRAINER_SETTINGS = {"fusion": "before_fc", "clusters": 64, "batch_size": 256, "seed": 0}


def environment() -> dict[str, Any]:
    """The card and the software: what every figure was measured with."""
    from importlib import metadata

    import avspot.avmodels.trainer as where

    version = "not installed"
    with contextlib.suppress(metadata.PackageNotFoundError):
        version = metadata.version("avspot")
    env: dict[str, Any] = {
        "python": platform.python_version(), "python_executable": sys.executable,
        "platform": platform.platform(), "torch": torch.__version__,
        "torch_cuda_build": torch.version.cuda, "numpy": np.__version__,
        "avspot": f"{version} ({Path(where.__file__).parent.parent})",
        "cuda_available": torch.cuda.is_available(),
    }  # fmt: skip
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(
            device_name=torch.cuda.get_device_name(0),
            device_memory_gib=round(props.total_memory / 2**30, 1),
            compute_capability=f"{props.major}.{props.minor}",
            multiprocessors=props.multi_processor_count, device_count=torch.cuda.device_count(),
            bf16_supported=bool(torch.cuda.is_bf16_supported()),
            cudnn=torch.backends.cudnn.version(),
        )  # fmt: skip
        with contextlib.suppress(Exception):
            v = int(torch._C._cuda_getDriverVersion())  # e.g. 13000: the driver's CUDA API
            env["driver_cuda_api"] = f"{v // 1000}.{v % 1000 // 10}"
        with contextlib.suppress(OSError, subprocess.SubprocessError, IndexError):
            env["nvidia_driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=30, check=True,
            ).stdout.split()[0]  # fmt: skip
    return env


@contextlib.contextmanager
def precision(device: torch.device, name: str) -> Iterator[None]:
    """fp32 | tf32 (fp32 with TF32 matmuls and convolutions) | bf16 (autocast)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = name == "tf32"
    try:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=name == "bf16"):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        sync(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 3)


def mark(device: torch.device) -> Any:
    """A point in the device's queue: a recorded CUDA event (the host clock on the CPU)."""
    if device.type != "cuda":
        return time.perf_counter()
    event = torch.cuda.Event(enable_timing=True)
    event.record()
    return event


def ms_between(a: Any, b: Any) -> float:
    """Milliseconds from mark ``a`` to mark ``b`` (CUDA marks: after a synchronize)."""
    return (b - a) * 1e3 if isinstance(a, float) else float(a.elapsed_time(b))


def model_config(fields: dict[str, Any], sizes: Sizes) -> ModelConfig:
    fields = dict(fields)
    if sizes.clusters_cap is not None:
        fields["clusters"] = min(fields.get("clusters", 64), sizes.clusters_cap)
    return ModelConfig(**fields)


def build(cfg: ModelConfig, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    with torch.device(device):  # weights drawn on the device: a 539 M-parameter model in seconds
        return build_model(cfg)


def guarded(row: dict[str, Any], fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one measurement; its failure (out of memory, or any error) becomes the row's result,
    not the end of the section: the other rows are still measured (measure() reports the error)."""
    try:
        row.update(fn())
    except torch.cuda.OutOfMemoryError as exc:
        row["error"] = f"out of memory: {str(exc).splitlines()[0]}"
    except Exception as exc:
        traceback.print_exc()
        row["error"] = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
    show(row)
    return row


def show(row: dict[str, Any]) -> None:
    """One printed line per measured row, as it is measured."""
    if "error" in row:
        text = row["error"]
    elif "s_per_half" in row:
        text = f"{row['s_per_half']:>9.3f} s per half of {row['frames']} frames"
    elif "data_share" in row:
        text = (f"{row['windows_s']:>9.0f} windows/s, data step {row['data_share']:.1%} of step "
                f"time ({row['data_ms_per_step']:.2f} of {row['step_ms']:.2f} ms), split "
                f"{row['split_gib']:.2f} GiB " + ("streamed from the node cache"
                if row["split_on"] == "stream" else f"on the {row['split_on']}"))  # fmt: skip
    elif "epochs" in row:
        text = f"2 epochs in {row['wall_s']:.1f} s, {row['precision']}: " + "; ".join(
            f"epoch {e['epoch']:.0f} {e.get('train_samples_per_s', 0):.0f} windows/s, "
            f"{e.get('epoch_time_s', 0):.1f} s with validation, val_average_map "
            f"{e.get('val_average_map', float('nan')):.3f} (SYNTHETIC)" for e in row["epochs"]
        )  # fmt: skip
    else:
        text = (f"{row['windows_s']:>9.0f} windows/s {row['step_ms']:>8.2f} ms/step "
                f"({row['params']:,} params)")  # fmt: skip
    peak = row.get("peak_gib")
    print(f"  {row['config']:<35} k={row.get('clusters', ''):<4} {row.get('precision', ''):<5} "
          f"{text}" + ("" if peak is None else f", peak {peak:.2f} GiB"), flush=True)  # fmt: skip


def train_rates(device: torch.device, sizes: Sizes, precisions: list[str]) -> list[dict[str, Any]]:
    """Windows/s and peak memory of forward + backward + Adam per configuration and precision."""
    rows = []
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for name, fields in TRAIN_CONFIGS.items():
        cfg = model_config(fields, sizes)
        model = build(cfg, device).train()
        gen = torch.Generator(device=device).manual_seed(0)
        shape = (sizes.batch, cfg.window_frames, 512)
        v, a = (torch.randn(shape, device=device, generator=gen) for _ in "va")
        y = (torch.rand(sizes.batch, 4, device=device, generator=gen) < 0.25).float()
        for prec in precisions:

            def run(
                model: Any = model, prec: str = prec, v: Any = v, a: Any = a, y: Any = y
            ) -> dict:
                opt = torch.optim.Adam(model.parameters(), lr=1e-4)
                reset_peak(device)

                def step() -> None:
                    opt.zero_grad(set_to_none=True)
                    with precision(device, prec):
                        loss = loss_fn(model(v, a).float(), y)
                    loss.backward()
                    opt.step()

                for _ in range(sizes.warmup):
                    step()
                sync(device)
                t0 = mark(device)
                for _ in range(sizes.steps):
                    step()
                t1 = mark(device)
                sync(device)
                ms = ms_between(t0, t1) / sizes.steps
                model.zero_grad(set_to_none=True)
                return {"step_ms": round(ms, 3), "windows_s": round(sizes.batch / ms * 1e3, 1),
                        "peak_gib": peak_gib(device)}  # fmt: skip

            row = {"config": name, "precision": prec, "clusters": cfg.clusters,
                   "params": count_parameters(model)}  # fmt: skip
            rows.append(guarded(row, run))
        del model, v, a, y
    return rows


def spot_seconds(device: torch.device, sizes: Sizes, precisions: list[str]) -> list[dict[str, Any]]:
    """Seconds of ``predict_half`` on one half of ``spot_frames`` frames (1 s stride)."""
    rng = np.random.default_rng(0)
    video, audio = (rng.standard_normal((sizes.spot_frames, 512), dtype=np.float32) for _ in "va")
    half = Half("synthetic", 1, "test", 2.0, video, audio)
    rows = []
    for name, fields in SPOT_CONFIGS.items():
        cfg = model_config(fields, sizes)
        model = build(cfg, device).eval()
        for prec in precisions:

            def run(model: Any = model, prec: str = prec) -> dict[str, Any]:
                reset_peak(device)
                with precision(device, prec):
                    predict_half(model, half)  # warm-up
                    times = []
                    for _ in range(sizes.spot_repeats):
                        sync(device)
                        t0 = time.perf_counter()
                        predict_half(model, half)  # returns numpy: it waits for the device
                        times.append(time.perf_counter() - t0)
                return {"s_per_half": round(min(times), 4), "peak_gib": peak_gib(device)}

            row = {"config": name, "precision": prec, "clusters": cfg.clusters,
                   "frames": sizes.spot_frames}  # fmt: skip
            rows.append(guarded(row, run))
        del model
    return rows


def feed_rates(
    device: torch.device, sizes: Sizes, train: list[Half], prec: str, table: str, cache: Path
) -> list[dict]:
    """Training fed by ``ChunkBatches`` with the split on the device (and on the host), and by a
    trial's ``StreamFeed`` from the node cache in ``cache``.

    Marks go into the device's queue before the data step (``next`` + copies), between it and
    the compute step, and after that: the GPU's time from the first to the second mark is its
    own gather plus any time it sat idle waiting for the host to hand it the batch."""
    cfg = model_config(FEED_MODEL, sizes)
    rows = []
    cuda = device.type == "cuda"
    for resident in ["device", "host", "stream"] if cuda else ["host", "stream"]:

        def run(resident: str = resident) -> dict[str, Any]:
            reset_peak(device)
            if resident == "stream":
                feed, nbytes = stream_feed(table, cache, cfg.window_frames, sizes.batch, device)
            else:
                feed = ChunkBatches(train, cfg.window_frames, sizes.batch, seed=0,
                                    device=device if resident == "device" else None)  # fmt: skip
                nbytes = feed.nbytes
            model = build(cfg, device).train()
            opt = torch.optim.Adam(model.parameters(), lr=1e-4)
            loss_fn = torch.nn.BCEWithLogitsLoss()
            it = (b for epoch in range(1, 10**6) for b in feed(epoch))
            marks: list[tuple[Any, Any, Any, int]] = []
            try:
                for i in range(sizes.feed_warmup + sizes.feed_steps):
                    m0 = mark(device)
                    b = next(it)  # the data step: index arithmetic, gather, copies
                    v, a, y = (to_tensor(b[k], device) for k in ("video", "audio", "targets"))
                    m1 = mark(device)
                    opt.zero_grad(set_to_none=True)
                    with precision(device, prec):
                        loss = loss_fn(model(v, a).float(), y)
                    loss.backward()
                    opt.step()
                    m2 = mark(device)
                    if i >= sizes.feed_warmup:
                        marks.append((m0, m1, m2, len(y)))
                sync(device)
            finally:  # a failed row (out of memory) must not leave the stream's blocks mapped
                if resident == "stream":
                    feed.close()
            data_ms = sum(ms_between(m0, m1) for m0, m1, _, _ in marks)
            step_ms = sum(ms_between(m0, m2) for m0, _, m2, _ in marks)
            n = sum(k for *_, k in marks)
            return {
                "windows_s": round(n / ms_between(marks[0][0], marks[-1][2]) * 1e3, 1),
                "data_share": round(data_ms / step_ms, 4),
                "data_ms_per_step": round(data_ms / len(marks), 3),
                "step_ms": round(step_ms / len(marks), 3),
                "split_gib": round(nbytes / 2**30, 3),
                "steps": len(marks), "peak_gib": peak_gib(device),
            }  # fmt: skip

        row = {"config": "before_fc netvlad k=64 seed head", "precision": prec,
               "split_on": resident, "clusters": cfg.clusters}  # fmt: skip
        rows.append(guarded(row, run))
    return rows


def stream_feed(
    table: str, cache: Path, window: int, batch: int, device: torch.device
) -> tuple[Any, int]:
    """A trial's streaming feed (``search.tuning.feed.StreamFeed``) over ``table``'s train split,
    forced to blocks of a quarter of the split, on ``device`` when it is a GPU; and the split's
    bytes."""
    from avspot.datasets.manifest import read_manifest
    from avspot.datasets.node_cache import ensure_split
    from avspot.search.tuning.feed import FeedSpec, StreamFeed

    os.environ["AVSPOT_CACHE_DIR"] = str(cache)
    cached, _ = ensure_split(table, read_manifest(table), "train")
    spec = FeedSpec(table, window, batch, seed=0)
    on = device if device.type == "cuda" else None
    return StreamFeed(cached, spec, on, group_bytes=max(1, cached.nbytes // 4)), cached.nbytes


def fit_two_epochs(
    settings: dict[str, Any], train: list[Half], valid: list[Half], device: torch.device
) -> dict[str, Any]:
    """The one place this script touches the Trainer's API: two epochs, the split on the device."""
    from avspot.avmodels.train_config import TrainConfig
    from avspot.avmodels.trainer import Trainer

    cuda = device.type == "cuda"
    cfg = TrainConfig().merge(
        {
            **settings,
            "max_epochs": 2,
            "device": str(device),
            "precision": "auto" if cuda else "fp32",
        }
    )
    feed = ChunkBatches(train, cfg.model.window_frames, cfg.batch_size, seed=cfg.seed,
                        device=device if cuda else None)  # fmt: skip
    result = Trainer(cfg).fit(feed, lambda: valid, pos_freq=feed.pos_freq)
    return {"wall_s": result.wall_s, "history": result.history, "stop_reason": result.stop_reason,
            "precision": cfg.precision, "batch_size": cfg.batch_size}  # fmt: skip


def trainer_run(device: torch.device, sizes: Sizes, train: list[Half], valid: list[Half]) -> dict:
    settings = dict(TRAINER_SETTINGS, batch_size=sizes.batch)
    if sizes.clusters_cap is not None:
        settings["clusters"] = min(settings["clusters"], sizes.clusters_cap)
    keep = ("epoch", "train_samples_per_s", "train_time_s", "epoch_time_s", "val_map",
            "val_average_map")  # fmt: skip

    def run() -> dict[str, Any]:
        reset_peak(device)
        out = fit_two_epochs(settings, train, valid, device)
        epochs = [{k: round(float(h[k]), 4) for k in keep if k in h} for h in out.pop("history")]
        return {**out, "epochs": epochs, "peak_gib": peak_gib(device)}

    row = {"config": "Trainer before_fc netvlad k=64 seed", "clusters": settings["clusters"],
           "settings": settings}  # fmt: skip
    return guarded(row, run)


def synthetic_table(root: Path, sizes: Sizes) -> tuple[list[Half], list[Half], dict[str, Any]]:
    uri = str(root / "synth")
    manifest = synthesize(uri, games=sizes.games, seed=0, half_minutes=sizes.half_minutes)
    train, valid = read_halves(uri, "train"), read_halves(uri, "valid")
    info = {"source": "avspot.datasets.synth", "uri": uri, "games": sizes.games, "seed": 0,
            "half_minutes": sizes.half_minutes, "fingerprint": manifest.fingerprint,
            "train_halves": len(train), "valid_halves": len(valid)}  # fmt: skip
    return train, valid, info


def measure(device: torch.device, mode: str, report: dict[str, Any]) -> list[str]:
    """Fill ``report`` section by section; the names of the sections that failed."""
    sizes = SIZES[mode]
    report["sizes"] = asdict(sizes)
    precisions = ["fp32", "tf32", "bf16"] if device.type == "cuda" else ["fp32", "bf16"]
    failed: list[str] = []
    timings = report.setdefault("section_s", {})

    def section(name: str, title: str, fn: Callable[[], Any]) -> None:
        print(f"\n{title}", flush=True)
        t0 = time.perf_counter()
        try:
            report[name] = fn()
        except Exception as exc:  # one broken section must not hide the others' figures
            report[name] = {"error": "".join(traceback.format_exception_only(exc)).strip()}
            traceback.print_exc()
            failed.append(name)
        rows = report[name] if isinstance(report[name], list) else [report[name]]
        if name not in failed and any(
            "error" in r and not str(r["error"]).startswith("out of memory") for r in rows
        ):
            failed.append(name)  # a row failed for another reason than memory
        timings[name] = round(time.perf_counter() - t0, 1)
        print(f"  [{name}: {timings[name]:.1f} s]", flush=True)

    section("train", f"1. training, forward + backward + Adam, batch {sizes.batch}, T = 20 s, "
            "512-d per modality (random features)", lambda: train_rates(device, sizes, precisions))  # fmt: skip
    section("spotting", "2. spotting one half (predict_half, 1 s stride, random features)",
            lambda: spot_seconds(device, sizes, ["fp32", "bf16"]))  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="avspot-gpu-check-") as tmp:
        got: dict[str, Any] = {}
        section("table", f"   a SYNTHETIC table: {sizes.games} games of 2 x {sizes.half_minutes:g} min",
                lambda: got.setdefault("t", synthetic_table(Path(tmp), sizes))[2])  # fmt: skip
        if "t" in got:
            train, valid, info = got["t"]
            prec = "bf16" if device.type == "cuda" else "fp32"
            cache = Path(tmp) / "node-cache"
            section("feed", "3. the feed into a trial (ChunkBatches, StreamFeed; CUDA-event marks)",
                    lambda: feed_rates(device, sizes, train, prec, info["uri"], cache))  # fmt: skip
            section("trainer", "4. the Trainer, two epochs on the synthetic table",
                    lambda: trainer_run(device, sizes, train, valid))  # fmt: skip
    return failed


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps, a smaller table (CI size)")
    ap.add_argument("--expect-gpu", action="store_true",
                    help="exit 1 when no CUDA device is found (instead of a CPU smoke)")  # fmt: skip
    ap.add_argument("--out", type=Path, default=Path("gpu_check.json"), help="JSON of all figures")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    env = environment()
    command = " ".join([Path(sys.executable).name, *sys.argv])
    report: dict[str, Any] = {"schema": SCHEMA, "data": DATA_NOTE, "command": command,
                              "environment": env}  # fmt: skip
    if torch.cuda.is_available():
        device, mode = torch.device("cuda:0"), "quick" if args.quick else "full"
        print(f"gpu-check: {env['device_name']}, {env['device_memory_gib']} GiB, driver "
              f"{env.get('nvidia_driver')}, CUDA {env['torch_cuda_build']} (driver API "
              f"{env.get('driver_cuda_api')}), torch {env['torch']}, Python {env['python']}, "
              f"avspot {env['avspot']}", flush=True)  # fmt: skip
    else:
        why = (f"no CUDA device: torch {env['torch']} (CUDA build {env['torch_cuda_build']}) "
               "reports torch.cuda.is_available() == False")  # fmt: skip
        if args.expect_gpu:
            print(f"gpu-check: FAILED: {why}, and --expect-gpu was given", file=sys.stderr)
            report.update(mode="none", status="no-gpu", exit_code=1)
            write_json(args.out, report)
            return 1
        device, mode = torch.device("cpu"), "cpu-smoke"
        print(f"gpu-check: {why}; nothing to measure. Running a tiny CPU smoke of every step "
              "(its figures are NOT GPU figures; k is capped at 8).", flush=True)  # fmt: skip
    print(f"data: {DATA_NOTE}; mode {mode}")
    report["mode"] = mode
    failed = measure(device, mode, report)
    report["total_s"] = round(time.perf_counter() - t0, 1)
    report["status"] = "failed: " + ", ".join(failed) if failed else "ok"
    report["exit_code"] = 1 if failed else 0
    write_json(args.out, report)
    print(f"\n{env.get('device_name', 'CPU')}, torch {env['torch']}, Python {env['python']}: "
          f"total {report['total_s']:.0f} s, sections {report['section_s']}; JSON: {args.out}")  # fmt: skip
    if failed:
        print(f"gpu-check: FAILED sections: {', '.join(failed)}", file=sys.stderr)
    print(f"reproduce: {command}")
    return report["exit_code"]


if __name__ == "__main__":
    sys.exit(main())
