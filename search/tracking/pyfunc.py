"""The trained spotter as an MLflow pyfunc model: a half's features in, spots out.

The model directory holds the checkpoint written by `avmodels.trainer.save_model` (state dict +
config JSON, no torch.export) under `artifacts/checkpoint`; `SpotterModel` loads it with
`avmodels.trainer.load_model`. Serving input (`mlflow models serve`, POST /invocations):

    {"inputs": {"video": [[512 floats] * N], "audio": [[512 floats] * N]},
     "params": {"method": "nms", "stride_s": 1.0, "fps": 2.0}}

output: one row per spot: frame (at 2 fps), position_ms, label (card|subs|soccer), confidence.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow.pyfunc  # this module is imported lazily, never by `import avspot.search`

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

FEATURE_DIM = 512
CHECKPOINT = "checkpoint"
DEFAULT_PARAMS: dict[str, Any] = {"method": "nms", "stride_s": 1.0, "fps": 2.0}


with warnings.catch_warnings():  # MLflow asks for type hints on predict; inputs are dicts
    warnings.simplefilter("ignore")

    class SpotterModel(mlflow.pyfunc.PythonModel):
        """Spots events of one half from its video and audio features."""

        def load_context(self, context) -> None:
            from avspot.avmodels.trainer import load_model

            self.model, self.config = load_model(context.artifacts[CHECKPOINT])
            if getattr(self.model, "cfg", None) is None:
                self.model.cfg = self.config
            self.model.eval()

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

    from avspot.avmodels.spotting import postprocess, predict_half
    from avspot.datasets.table import Half

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
    cfg = getattr(model, "cfg", None)
    window_frames = int(cfg.window_frames) if cfg is not None else None
    probs = predict_half(model, half, stride_s, window_frames=window_frames)  # (n_steps, 3)
    spots = postprocess(probs, str(p["method"]), stride_s=stride_s, fps=2.0)
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


def _model_config(config: Any) -> Any:
    """The ModelConfig inside a TrainConfig (or the config itself)."""
    return getattr(config, "model", config)


def save_spotter_model(
    model: Any,
    config: Any,
    path: str | Path,
    *,
    example_frames: int = 240,
    mlflow_model: Any = None,
) -> Path:
    """Write the pyfunc model directory at `path` (must not exist)."""
    from avspot.avmodels.trainer import save_model

    path = Path(path)
    mc = _model_config(config)
    sig, example = signature_and_example(
        example_frames,
        int(getattr(mc, "video_dim", FEATURE_DIM) or FEATURE_DIM),
        int(getattr(mc, "audio_dim", FEATURE_DIM) or FEATURE_DIM),
    )
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp, CHECKPOINT)
        save_model(model, _model_config(config), ckpt)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*type hints.*")
            mlflow.pyfunc.save_model(
                path=str(path),
                python_model=SpotterModel(),
                artifacts={CHECKPOINT: str(ckpt)},
                signature=sig,
                input_example=example,
                mlflow_model=mlflow_model,
                pip_requirements=_requirements(),
            )
    return path


def _requirements() -> list[str]:
    """Pinned runtime requirements of the served model (avspot itself must be installed)."""
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for dist in ("mlflow", "torch", "numpy", "pandas", "pyarrow", "avspot"):
        try:
            reqs.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            continue
    return reqs


def log_spotter_model(
    client: MlflowClient,
    run_id: str,
    experiment_id: str,
    model: Any,
    config: Any,
    *,
    name: str = "model",
    metrics: Mapping[str, Any] | None = None,
    example_frames: int = 240,
) -> str:
    """Log the model as an MLflow LoggedModel `name` of run `run_id` with explicit ids only
    (no active run). Returns `models:/<model_id>`; `runs:/<run_id>/<name>` resolves to it too."""
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import Model

    from avspot.search.tracking import scrub

    params = {}
    mc = _model_config(config)
    if hasattr(mc, "to_dict"):
        from avspot.search.tracking import flatten

        params = scrub(flatten(mc.to_dict()))
    lm = client.create_logged_model(
        experiment_id,
        name=name,
        source_run_id=run_id,
        params=dict(list(params.items())[:100]),
        tags={"avspot.flavor": "spotter"},
    )
    try:
        client.log_outputs(run_id, [LoggedModelOutput(lm.model_id, step=0)])
        mm = Model(
            artifact_path=lm.artifact_location,
            run_id=run_id,
            model_uuid=lm.model_id,
            model_id=lm.model_id,
        )
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp, "model")
            save_spotter_model(model, config, local, example_frames=example_frames, mlflow_model=mm)
            client.log_model_artifacts(lm.model_id, str(local))
        if metrics:
            from mlflow.entities import Metric

            from avspot.search.tracking import _metrics

            ms = [
                Metric(m.key, m.value, m.timestamp, m.step, model_id=lm.model_id, run_id=run_id)
                for m in _metrics(metrics, 0)
            ]
            client.log_batch(run_id, metrics=ms[:900], synchronous=True)
        client.finalize_logged_model(lm.model_id, LoggedModelStatus.READY)
    except BaseException:
        client.finalize_logged_model(lm.model_id, LoggedModelStatus.FAILED)
        raise
    return f"models:/{lm.model_id}"


def local_model_dir(model_uri: str) -> Path:
    """Download (or locate) an MLflow model and return its local directory."""
    p = Path(model_uri)
    if p.exists():
        return p
    import mlflow.artifacts

    return Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
