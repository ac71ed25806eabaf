"""Extract the seed's audio features from SoccerNet videos: ``{half}_VGGish.npy`` per game.

Per half: decode the audio track to 16 kHz mono from the game's start offset
(:mod:`avspot.datasets.audio.media`), cut it into 0.5 s chunks and compute VGGish's log-mel input
(:mod:`avspot.datasets.audio.melspec`), run the chunks in batches through VGGish up to conv4_2 with a
global average pool (:mod:`avspot.datasets.audio.vggish`), and write float32 (N, 512) atomically (a
temporary name, then a rename), so an interrupted run never leaves a truncated file.

Inputs are game folders (holding ``1.mkv``/``2.mkv``, or ``{1,2}_224p.mkv``, ``{1,2}_720p.mkv``,
``{1,2}.<any media extension>`` such as ``1.wav``, or the raw ``{1,2}_HQ.mkv`` with their
``video.ini``), folders to search for game folders, or single media files (``.../game/1.mkv`` is
half 1 of its folder's game; any other ``name.ext`` gives ``OUT/name_VGGish.npy``). A game folder's
output goes to ``OUT/<league>/<season>/<game>/`` (its path's last three parts, SoccerNet's
layout), so ``OUT`` can be the SoccerNet root itself (the files land beside the ResNet features,
ready for ``avspot data ingest``) or a new tree.

Alignment: when ``{half}_ResNET_PCA512.npy`` (or another ``video_features`` stem) is found
(under ``video_features_root/<game>/``, beside the media, or in the output folder, in that
order), the output has exactly its frame count: extra chunks are dropped and missing ones repeat the last chunk's features (edge padding),
if the counts differ by at most ``max_length_diff`` frames (ingest's default, 5); otherwise a
DataError names both files and both counts. Without video features the output keeps every whole
0.5 s chunk.

Resuming: a half whose output exists with the right shape is kept; a game with every half kept
is skipped, a partially written game redoes only its missing halves.

With ``address``, games are rows of a Ray Data dataset mapped by a pool of actors (one GPU each
when the cluster has GPUs, else a few CPUs each); media and ``OUT`` paths must then be readable
and writable at the same paths on every node (a shared file system). The weights are read once
by the driver and travel through Ray's object store.
"""

from __future__ import annotations

import glob
import json
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np

from avspot.datasets.audio.jobs import (
    DEFAULT_BATCH_SIZE,
    FEATURE_DIM,
    VIDEO_FEATURES,
    GameJob,
    HalfJob,
    is_complete,
    plan_games,
)
from avspot.datasets.audio.media import Segment, decode_segment
from avspot.datasets.audio.melspec import CHUNK_SAMPLES, SAMPLE_RATE, num_chunks
from avspot.datasets.errors import DataError
from avspot.datasets.progress import progress as progress_bar_iter
from avspot.datasets.progress import progress_bar

if TYPE_CHECKING:
    import torch


def _save_atomic(path: str, arr: np.ndarray) -> None:
    folder, base = os.path.split(path)
    os.makedirs(folder or ".", exist_ok=True)
    for stale in glob.glob(os.path.join(folder, f".{base}.tmp-*")):
        os.remove(stale)  # left by an interrupted run
    tmp = os.path.join(folder, f".{base}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as f:
            np.save(f, arr)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def check_lengths(n: int, target: int, max_length_diff: int, what: str) -> None:
    """DataError unless ``n`` audio frames are within ``max_length_diff`` of ``target``."""
    if abs(n - target) > max_length_diff:
        raise DataError(
            f"{what}: audio gives {n} frames, video {target}; they differ by more than "
            f"max_length_diff {max_length_diff}"
        )


def align(features: np.ndarray, target: int, max_length_diff: int, what: str) -> np.ndarray:
    """Truncate or edge-pad (N, D) ``features`` to ``target`` rows, within ``max_length_diff``."""
    n = len(features)
    check_lengths(n, target, max_length_diff, what)
    if n >= target:
        return features[:target]
    if n == 0:
        raise DataError(f"{what}: no audio frames to pad from")
    return np.concatenate([features, np.repeat(features[-1:], target - n, axis=0)])


def resolve_device(device: str | None) -> torch.device:
    """``device``, or CUDA when available, else CPU; a bad or unavailable one is a DataError."""
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise DataError(
            f"device {device!r}: not a torch device (cpu, cuda, cuda:1, ...)", field="device"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DataError(f"device {device!r}: CUDA is not available on this machine", field="device")
    return dev


def extract_half(
    h: HalfJob,
    net: torch.nn.Module,
    device: torch.device,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_length_diff: int = 5,
    progress: bool = False,
    desc: str = "",
) -> dict[str, Any]:
    """Decode, front end, network, align, write ``h.out_npy``; return what was done."""
    from avspot.datasets.audio.melspec import log_mel_chunks
    from avspot.datasets.audio.vggish import embed

    audio = decode_segment(Segment(h.media, h.start, h.duration))  # (S,) float32, 16 kHz
    n = num_chunks(len(audio))
    if n == 0:
        raise DataError(f"{h.media}: less than 0.5 s of audio after {h.start:g} s")
    keep = n
    if h.video_frames is not None:
        check_lengths(n, h.video_frames, max_length_diff, f"{h.media} vs {h.video_npy}")
        keep = min(n, h.video_frames)  # chunks past the video are never computed
    feats = np.empty((keep, FEATURE_DIM), np.float32)
    with progress_bar(total=keep, desc=desc, enabled=progress, unit="chunk") as bar:
        for b in range(0, keep, batch_size):
            e = min(keep, b + batch_size)
            samples = audio[b * CHUNK_SAMPLES : e * CHUNK_SAMPLES]  # (chunks * 8000,)
            log_mel = log_mel_chunks(samples, device=device)  # (chunks, 46, 64)
            feats[b:e] = embed(net, log_mel).float().cpu().numpy()  # (chunks, 512)
            bar.update(e - b)
    if h.video_frames is not None:
        feats = align(feats, h.video_frames, max_length_diff, f"{h.media} vs {h.video_npy}")
    _save_atomic(h.out_npy, np.ascontiguousarray(feats, dtype=np.float32))
    return {
        "half": h.half,
        "media": h.media,
        "out": h.out_npy,
        "frames": int(len(feats)),
        "audio_frames": int(n),
        "video_frames": h.video_frames,
        "media_seconds": len(audio) / SAMPLE_RATE,
    }


def extract_game(
    job: GameJob, net: torch.nn.Module, device: torch.device, **options: Any
) -> dict[str, Any]:
    """Extract a game's incomplete halves (``options``: those of ``extract_half``: batch size,
    length tolerance, progress); ``status`` "skipped" when none was left to do."""
    todo = [h for h in job.halves if not is_complete(h)]
    records = [
        extract_half(
            h, net, device, desc=f"{job.key or os.path.basename(h.media)} half {h.half}", **options
        )
        for h in todo
    ]
    return {"key": job.key, "status": "done" if todo else "skipped", "halves": records}


def _job_to_json(job: GameJob) -> str:
    return json.dumps(asdict(job))


def _job_from_json(raw: str) -> GameJob:
    d = json.loads(raw)
    return GameJob(key=d["key"], source=d["source"], halves=[HalfJob(**h) for h in d["halves"]])


class RayGameExtractor:
    """Ray Data actor: holds the network on its device; maps rows ``{"job"}`` to ``{"result"}``."""

    def __init__(
        self,
        weights: list[Any],
        device: str,
        batch_size: int,
        max_length_diff: int,
        threads: int,
    ) -> None:
        import ray
        import torch

        from avspot.datasets.audio.vggish import load_vggish

        self.device = resolve_device(device)
        if self.device.type == "cpu":
            torch.set_num_threads(max(1, threads))
        self.net = load_vggish(ray.get(weights[0]), self.device)  # weights[0]: an ObjectRef
        self.batch_size = batch_size
        self.max_length_diff = max_length_diff

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = []
        for raw in batch["job"]:
            job = _job_from_json(str(raw))
            c0 = time.process_time()
            try:
                rec = extract_game(
                    job,
                    self.net,
                    self.device,
                    batch_size=self.batch_size,
                    max_length_diff=self.max_length_diff,
                )
            except DataError as exc:  # reported by the driver once every game has run
                rec = {"key": job.key, "status": "failed", "error": str(exc), "halves": []}
            rec["cpu_seconds"] = time.process_time() - c0
            results.append(json.dumps(rec))
        return {"result": np.array(results, dtype=object)}


def _run_ray(
    jobs: list[GameJob],
    state: dict[str, Any],
    address: str,
    device: str | None,
    batch_size: int,
    max_length_diff: int,
    progress: bool,
) -> tuple[list[dict[str, Any]], str]:
    import ray

    if device not in (None, "cpu") and not device.startswith("cuda"):
        raise DataError(f"device {device!r}: with a Ray cluster, use cpu or cuda", field="device")
    started = not ray.is_initialized()
    if started:
        if address == "local":
            ray.init(address="local", include_dashboard=False)
        else:
            ray.init(address=address)
    try:
        res = ray.cluster_resources()
        gpus, cpus = int(res.get("GPU", 0)), int(res.get("CPU", 1))
        use_gpu = device.startswith("cuda") if device else gpus > 0
        if use_gpu and gpus == 0:
            raise DataError(
                f"device {device}: the Ray cluster ({address}) has no GPUs", field="device"
            )
        if use_gpu:
            per_cpu, per_gpu, actors = 1, 1, min(len(jobs), gpus)
        else:
            per_cpu, per_gpu = max(1, min(4, cpus)), 0
            actors = max(1, min(len(jobs), cpus // per_cpu))
        where = f"ray: {actors} actor(s), {'1 GPU' if use_gpu else f'{per_cpu} CPU'} each"
        ref = ray.put({k: v.numpy() for k, v in state.items()})
        ctx = ray.data.DataContext.get_current()
        old_bars = ctx.enable_progress_bars
        ctx.enable_progress_bars = progress
        try:
            ds = ray.data.from_items([{"job": _job_to_json(j)} for j in jobs])
            ds = ds.map_batches(
                RayGameExtractor,
                batch_size=1,  # one game per call: games are long, rows are few
                # one game in flight per actor, so the last games spread over idle actors
                compute=ray.data.ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=1),
                num_cpus=per_cpu,
                num_gpus=per_gpu,
                fn_constructor_kwargs={
                    "weights": [ref],
                    # each actor sees only the GPU Ray gave it, as cuda:0
                    "device": "cuda" if use_gpu else "cpu",
                    "batch_size": batch_size,
                    "max_length_diff": max_length_diff,
                    "threads": per_cpu,
                },
            )
            rows = ds.take_all()
        finally:
            ctx.enable_progress_bars = old_bars
        return [json.loads(r["result"]) for r in rows], where
    finally:
        if started:
            ray.shutdown()


def extract_audio(
    inputs: Sequence[str],
    weights: str,
    out_dir: str,
    *,
    address: str | None = None,
    device: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    max_length_diff: int = 5,
    video_features_root: str | None = None,
    video_features: str = VIDEO_FEATURES,
) -> dict[str, Any]:
    """Write ``OUT/<game>/{half}_VGGish.npy`` for every INPUT game; return a summary dict.

    ``address``: a Ray cluster address ("auto", "ray://host:10001", or "local" for a local Ray)
    runs the games as a Ray Data job; None runs them here. ``device`` overrides the choice of
    CUDA-when-available. ``video_features_root`` is a SoccerNet-shaped tree holding
    ``<game>/{half}_<video_features>.npy`` to align to (else they are looked for beside the media
    and in the output folder); ``video_features`` is their name stem as in ``ingest``
    (``ResNET_TF2_PCA512`` for SoccerNet v2's files). The summary holds games, done, skipped, halves, media_minutes,
    seconds (wall), cpu_seconds, media_minutes_per_cpu_second, device and per-game details.
    """
    t0, c0 = time.perf_counter(), time.process_time()
    if batch_size < 1:
        raise DataError(f"batch_size {batch_size}: must be >= 1", field="batch_size")
    if max_length_diff < 0:
        raise DataError(f"max_length_diff {max_length_diff}: must be >= 0", field="max_length_diff")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise DataError(f"out {out_dir!r}: exists and is not a directory", field="out")
    # Ray workers resolve paths against their own working directory: hand them absolute ones.
    inputs = [os.path.abspath(p) for p in inputs]
    out_dir = os.path.abspath(out_dir)
    if video_features_root:
        video_features_root = os.path.abspath(video_features_root)
    from avspot.datasets.audio.vggish import load_state_dict_file

    state = load_state_dict_file(weights)  # a bad file fails before any decoding
    jobs = plan_games(
        inputs, out_dir, video_features_root=video_features_root, video_features=video_features
    )
    todo = [j for j in jobs if not all(is_complete(h) for h in j.halves)]
    details: list[dict[str, Any]] = [
        {"key": j.key, "status": "skipped", "halves": []} for j in jobs if j not in todo
    ]
    worker_cpu: float | None = None
    if not todo:
        where = "none"
    elif address:
        records, where = _run_ray(
            todo, state, address, device, batch_size, max_length_diff, progress
        )
        details += records
        worker_cpu = sum(r.get("cpu_seconds", 0.0) for r in records)
        failed = [r for r in records if r["status"] == "failed"]
        if failed:
            raise DataError(
                f"{len(failed)} of {len(todo)} games failed (the others were written); first: "
                f"{failed[0]['error']}"
            )
    else:
        from avspot.datasets.audio.vggish import load_vggish

        dev = resolve_device(device)
        net = load_vggish(state, dev)
        where = str(dev)
        for job in progress_bar_iter(todo, desc="extract-audio", enabled=progress, unit="game"):
            details.append(
                extract_game(
                    job,
                    net,
                    dev,
                    batch_size=batch_size,
                    max_length_diff=max_length_diff,
                    progress=progress,
                )
            )
    seconds = time.perf_counter() - t0
    cpu = worker_cpu if worker_cpu is not None else time.process_time() - c0
    halves = [h for d in details for h in d["halves"]]
    minutes = sum(h["media_seconds"] for h in halves) / 60.0
    return {
        "games": len(jobs),
        "done": sum(d["status"] == "done" for d in details),
        "skipped": sum(d["status"] == "skipped" for d in details),
        "halves": len(halves),
        "media_minutes": minutes,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "media_minutes_per_cpu_second": minutes / cpu if cpu > 0 and halves else None,
        "device": where,
        "out_dir": out_dir,
        "details": sorted(details, key=lambda d: d["key"]),
    }


def format_summary(summary: dict[str, Any]) -> str:
    """One line for the CLI."""
    rate = summary["media_minutes_per_cpu_second"]
    speed = f"; {rate:.2f} media min per CPU-second" if rate else ""
    return (
        f"extracted audio features of {summary['done']} game(s) ({summary['halves']} halves, "
        f"{summary['media_minutes']:.1f} media min), skipped {summary['skipped']} complete, "
        f"to {summary['out_dir']} in {summary['seconds']:.1f}s on {summary['device']}{speed}"
    )
