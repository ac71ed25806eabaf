"""The trained spotter as an MLflow pyfunc model: a half's features in, spots out.

The model directory holds the checkpoint written by `avmodels.model_io.save_model` (state dict +
config JSON, no torch.export) under `artifacts/checkpoint`, and a wheel of avspot itself
(`tracking.wheel`) that its requirements.txt installs, so `mlflow models serve` can build the
model's environment from a package index plus the model directory. Serving input (`mlflow models serve`, POST /invocations):

    {"inputs": {"video": [[512 floats] * N], "audio": [[512 floats] * N]},
     "params": {"method": "nms", "stride_s": 1.0, "fps": 2.0}}

output: one row per spot: frame (at 2 fps), position_ms, label (card|subs|soccer), confidence.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow.pyfunc  # imported by trials and serving only, never by the CLI's --help

from avspot.datasets.layout import FEATURE_DIM
from avspot.search.tracking.client import artifact_timeout, get_client
from avspot.search.tracking.names import MODEL_ARTIFACT
from avspot.search.tracking.scrub import flatten, scrub
from avspot.search.tracking.wheel import build_wheel

CHECKPOINT = "checkpoint"
DEFAULT_PARAMS: dict[str, Any] = {"method": "nms", "stride_s": 1.0, "fps": 2.0}


with warnings.catch_warnings():  # MLflow asks for type hints on predict; inputs are dicts
    warnings.simplefilter("ignore")

    class SpotterModel(mlflow.pyfunc.PythonModel):
        """Spots events of one half from its video and audio features."""

        def load_context(self, context) -> None:
            from avspot.avmodels.device import resolve_device
            from avspot.avmodels.model_io import load_model

            # a GPU when the serving machine has one ($AVSPOT_DEVICE overrides: cpu, cuda:N)
            device = resolve_device(os.environ.get("AVSPOT_DEVICE", "auto"))
            self.model, self.config = load_model(context.artifacts[CHECKPOINT], device)

        def predict(self, context, model_input, params=None):  # untyped: MLflow reads type hints
            return predict_spots(self.model, model_input, params)


def _features(model_input: Any) -> tuple[Any, Any]:
    """(video (N, 512), audio (N, 512)) float32 from a dict of arrays or a DataFrame."""
    import numpy as np

    if hasattr(model_input, "columns"):  # DataFrame: one row per frame or one row per half
        df = model_input
        video, audio = list(df["video"]), list(df["audio"])
        if (
            len(df) == 1
            and np.asarray(video[0], dtype=object).ndim == 2
            or (len(df) == 1 and len(video[0]) and hasattr(video[0][0], "__len__"))
        ):
            video, audio = video[0], audio[0]
        video = np.stack([np.asarray(v, dtype=np.float32) for v in video])
        audio = np.stack([np.asarray(a, dtype=np.float32) for a in audio])
    elif isinstance(model_input, Mapping):
        video = np.asarray(model_input["video"], dtype=np.float32)
        audio = np.asarray(model_input["audio"], dtype=np.float32)
    else:
        raise ValueError("spotter input: expected {'video': (N, 512), 'audio': (N, 512)}")
    if video.ndim != 2 or audio.ndim != 2:
        raise ValueError(f"spotter input: video {video.shape} and audio {audio.shape} must be 2-D")
    n = min(len(video), len(audio))  # the seed truncates audio to the video length
    return video[:n], audio[:n]


def predict_spots(model: Any, model_input: Any, params: Mapping[str, Any] | None = None):
    """Spots of one half as a DataFrame (frame, position_ms, label, confidence)."""
    import pandas as pd

    from avspot.avmodels.postprocess import postprocess
    from avspot.avmodels.spotting import classes_of, predict_half
    from avspot.datasets.halves import Half

    p = {**DEFAULT_PARAMS, **{k: v for k, v in (params or {}).items() if v is not None}}
    video, audio = _features(model_input)
    half = Half(
        game="request",
        half=1,
        split="test",
        fps=float(p["fps"]),
        video=video,
        audio=audio,
        events=[],
    )
    stride_s = float(p["stride_s"])
    probs = predict_half(model, half, stride_s)  # (n_steps, C), windows of model.config
    spots = postprocess(
        probs, str(p["method"]), stride_s=stride_s, fps=2.0, classes=classes_of(model)
    )
    rows = [(s.frame, s.position_ms, s.label, float(s.confidence)) for s in spots]
    return pd.DataFrame(rows, columns=["frame", "position_ms", "label", "confidence"]).astype(
        {"frame": "int64", "position_ms": "int64", "label": "str", "confidence": "float64"}
    )


def signature_and_example(
    frames: int = 240, video_dim: int = FEATURE_DIM, audio_dim: int = FEATURE_DIM
) -> tuple[Any, dict[str, Any]]:
    """The model signature (tensor inputs video (-1, Dv) and audio (-1, Da) float32, params
    method/stride_s/fps) and a small random input example (`frames` frames: 2 min at 2 fps)."""
    import numpy as np
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec

    inputs = Schema(
        [
            TensorSpec(np.dtype(np.float32), (-1, video_dim), "video"),
            TensorSpec(np.dtype(np.float32), (-1, audio_dim), "audio"),
        ]
    )
    outputs = Schema(
        [
            ColSpec("long", "frame"),
            ColSpec("long", "position_ms"),
            ColSpec("string", "label"),
            ColSpec("double", "confidence"),
        ]
    )
    params = ParamSchema(
        [
            ParamSpec("method", "string", DEFAULT_PARAMS["method"]),
            ParamSpec("stride_s", "double", DEFAULT_PARAMS["stride_s"]),
            ParamSpec("fps", "double", DEFAULT_PARAMS["fps"]),
        ]
    )
    rng = np.random.default_rng(0)
    example = {
        "video": rng.standard_normal((frames, video_dim)).astype(np.float32),
        "audio": rng.standard_normal((frames, audio_dim)).astype(np.float32),
    }
    return ModelSignature(inputs=inputs, outputs=outputs, params=params), example


def _requirements(wheel: Path) -> list[str]:
    """Pinned serving requirements, then the shipped wheel (a path relative to the model)."""
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for dist in ("mlflow", "torch", "numpy", "pandas", "pyarrow"):
        try:
            reqs.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            continue
    return [*reqs, f"artifacts/{wheel.name}"]


def _model_kwargs(model: Any, config: Any, tmp: Path, example_frames: int) -> dict[str, Any]:
    """The pyfunc flavor's arguments: checkpoint and wheel artifacts, signature, example."""
    from avspot.avmodels.model_io import save_model

    sig, example = signature_and_example(example_frames, config.video_dim, config.audio_dim)
    ckpt = save_model(model, config, tmp / CHECKPOINT)
    wheel = build_wheel(tmp)
    return {
        "python_model": SpotterModel(),
        "artifacts": {CHECKPOINT: str(ckpt), "wheel": str(wheel)},
        "signature": sig,
        "input_example": example,
        "pip_requirements": _requirements(wheel),
    }


def save_spotter_model(
    model: Any, config: Any, path: str | Path, *, example_frames: int = 240
) -> Path:
    """Write the pyfunc model directory of ``model`` (its ModelConfig ``config``) at ``path``."""
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*type hints.*")
        kwargs = _model_kwargs(model, config, Path(tmp), example_frames)
        mlflow.pyfunc.save_model(path=str(path), **kwargs)
    return path


def log_spotter_model(
    run_id: str,
    experiment_id: str,
    model: Any,
    config: Any,
    *,
    step: int = 0,
    example_frames: int = 240,
) -> str:
    """Log the model as MLflow LoggedModel ``model`` of run ``run_id`` (``Model.log``: the
    logged model, its link to the run and the run's metrics at ``step``, signature and input
    example). Returns ``models:/<model_id>``; ``runs:/<run_id>/model`` resolves to it too."""
    from mlflow.models import Model

    get_client()  # the tracking URI that Model.log resolves
    # Model.log files the logged model under the process's current experiment when no run is
    # active (MLflow 3.17); set it to the run's own.
    mlflow.set_experiment(experiment_id=experiment_id)
    # artifact_timeout: the checkpoint of a k=512 model is 1-2.2 GB (tracking.client's notes)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), artifact_timeout():
        warnings.filterwarnings("ignore", message=".*type hints.*")
        info = Model.log(
            artifact_path=None,
            name=MODEL_ARTIFACT,
            flavor=mlflow.pyfunc,
            run_id=run_id,
            step=step,
            params=dict(list(scrub(flatten(config.to_dict())).items())[:100]),
            tags={"avspot.flavor": "spotter"},
            **_model_kwargs(model, config, Path(tmp), example_frames),
        )
    return f"models:/{info.model_id}"
