"""VGGish (Hershey et al., ICASSP 2017) up to conv4/conv4_2, global-average-pooled: 512 values.

The network is the AudioSet release's convolutional stack (``vggish_slim.py``): 3x3 convolutions
with stride 1 and SAME padding, each followed by a ReLU, and 2x2 max pools with stride 2 and SAME
padding: conv1 64, pool1, conv2 128, pool2, conv3_1/conv3_2 256, pool3, conv4_1/conv4_2 512. The
seed study (like DTaoo/VGGish's ``evaluation.py``) takes conv4/conv4_2's output, after its ReLU
and before pool4, and averages it over time and frequency. Pools use ``ceil_mode=True``, which is
TensorFlow's SAME padding for a 2x2/2 pool: with the seed's 46-frame chunks the time axis goes
46 -> 23 -> 12 -> 6 (floor pooling would give 5), so conv4_2 sees (6, 8) positions.
Input (B, 1, frames, 64): time is the height, mel bands the width, as in the TF and Keras models.

Weights are never downloaded: the user passes a file holding our state dict (``torch.save`` of a
dict of tensors with keys ``conv1.weight``, ``conv1.bias``, ... ``conv4_2.bias``, shapes as
:func:`expected_shapes`). Make it from a public checkpoint with
``scripts/convert_vggish_weights.py``:

* The PyTorch port harritaylor/torchvggish publishes the converted TF weights as a release file,
  https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth
  (keys ``features.{0,3,6,8,11,13}.{weight,bias}`` for the six convolutions, ``embeddings.*``
  for the fully connected layers we do not use). ``python scripts/convert_vggish_weights.py
  vggish-10086976.pth vggish_conv.pt`` renames and checks them (see :func:`from_torchvggish`).
* The original TF-Slim checkpoint of the AudioSet release,
  https://storage.googleapis.com/audioset/vggish_model.ckpt (variables ``vggish/conv1/weights``,
  ``vggish/conv3/conv3_1/biases``, ..., kernels HWIO), can only be read with TensorFlow. Export
  its convolution variables once where TensorFlow is installed::

      import numpy as np, tensorflow as tf
      r = tf.train.load_checkpoint("vggish_model.ckpt")
      np.savez("vggish_tf.npz", **{n: r.get_tensor(n) for n in r.get_variable_to_shape_map()
                                   if n.startswith("vggish/conv")})

  then ``python scripts/convert_vggish_weights.py vggish_tf.npz vggish_conv.pt`` transposes the
  kernels to PyTorch's OIHW (see :func:`from_tf_variables`).

torch is imported inside the functions, so importing this module stays light.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from avspot.datasets.errors import DataError

if TYPE_CHECKING:
    import torch

EMBEDDING_DIM = 512
# (name, in channels, out channels); a 2x2/2 max pool follows conv1, conv2 and conv3_2.
CONVS: tuple[tuple[str, int, int], ...] = (
    ("conv1", 1, 64),
    ("conv2", 64, 128),
    ("conv3_1", 128, 256),
    ("conv3_2", 256, 256),
    ("conv4_1", 256, 512),
    ("conv4_2", 512, 512),
)
_POOL_AFTER = {"conv1": "pool1", "conv2": "pool2", "conv3_2": "pool3"}
# harritaylor/torchvggish's nn.Sequential indices of the six convolutions
_TORCHVGGISH_INDEX = {
    "conv1": 0,
    "conv2": 3,
    "conv3_1": 6,
    "conv3_2": 8,
    "conv4_1": 11,
    "conv4_2": 13,
}
_TF_SCOPE = {
    "conv1": "vggish/conv1",
    "conv2": "vggish/conv2",
    "conv3_1": "vggish/conv3/conv3_1",
    "conv3_2": "vggish/conv3/conv3_2",
    "conv4_1": "vggish/conv4/conv4_1",
    "conv4_2": "vggish/conv4/conv4_2",
}
CONVERT_HINT = "scripts/convert_vggish_weights.py"


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Our state dict's keys and shapes, in network order."""
    shapes: dict[str, tuple[int, ...]] = {}
    for name, cin, cout in CONVS:
        shapes[f"{name}.weight"] = (cout, cin, 3, 3)
        shapes[f"{name}.bias"] = (cout,)
    return shapes


def build_network() -> torch.nn.Module:
    """Untrained VGGish conv stack + global average pool: (B, 1, frames, 64) -> (B, 512)."""
    from collections import OrderedDict

    from torch import nn

    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for name, cin, cout in CONVS:
        layers[name] = nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1)
        layers[f"relu{name[4:]}"] = nn.ReLU()
        if name in _POOL_AFTER:
            layers[_POOL_AFTER[name]] = nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True)
    layers["gap"] = nn.AdaptiveAvgPool2d(1)  # (B, 512, t, 8) -> (B, 512, 1, 1)
    layers["flatten"] = nn.Flatten()  # (B, 512)
    return nn.Sequential(layers)


def random_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """He-initialised weights in our format, for tests and benchmarks (not a trained model)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for key, shape in expected_shapes().items():
        if key.endswith(".weight"):
            fan_in = shape[1] * 9
            out[key] = torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5
        else:
            out[key] = torch.randn(shape, generator=g) * 0.01
    return out


def check_state_dict(state: Any, source: str) -> dict[str, torch.Tensor]:
    """Validate a state dict against :func:`expected_shapes`; float32 CPU tensors, or DataError.

    ``source`` (the file name) starts every message, which names the key that is wrong.
    """
    import torch

    if isinstance(state, Mapping) and set(state) == {"state_dict"}:
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise DataError(
            f"{source}: not a state dict (a mapping of parameter names to tensors) but a "
            f"{type(state).__name__}"
        )
    keys = [str(k) for k in state]
    if any(re.fullmatch(r"features\.\d+\.(weight|bias)", k) for k in keys):
        raise DataError(
            f"{source}: looks like the harritaylor/torchvggish checkpoint (keys features.N.*); "
            f"convert it first: python {CONVERT_HINT} {source} vggish_conv.pt"
        )
    if any(k.startswith("vggish/") for k in keys):
        raise DataError(
            f"{source}: holds TensorFlow variable names (vggish/...); convert it first: "
            f"python {CONVERT_HINT} {source} vggish_conv.pt"
        )
    expected = expected_shapes()
    missing = [k for k in expected if k not in state]
    if missing:
        raise DataError(
            f"{source}: missing key {missing[0]!r} ({len(missing)} of {len(expected)} VGGish "
            f"conv parameters missing; expected keys conv1.weight ... conv4_2.bias)"
        )
    unexpected = [k for k in keys if k not in expected]
    if unexpected:
        raise DataError(
            f"{source}: unexpected key {unexpected[0]!r} ({len(unexpected)} unexpected; only "
            f"conv1..conv4_2 weights and biases belong in the file)"
        )
    out: dict[str, torch.Tensor] = {}
    for key, shape in expected.items():
        value = state[key]
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(np.array(value))  # a copy: object-store arrays are read-only
        if not isinstance(value, torch.Tensor):
            raise DataError(f"{source}: {key} is a {type(value).__name__}, expected a tensor")
        if tuple(value.shape) != shape:
            raise DataError(f"{source}: {key} has shape {tuple(value.shape)}, expected {shape}")
        if not value.is_floating_point():
            raise DataError(f"{source}: {key} has dtype {value.dtype}, expected floats")
        value = value.detach().to(device="cpu", dtype=torch.float32).contiguous()
        if not torch.isfinite(value.abs().max()):  # max propagates NaN; faster than isfinite(x)
            raise DataError(f"{source}: {key} holds NaN or Inf")
        out[key] = value
    return out


def load_state_dict_file(path: str) -> dict[str, torch.Tensor]:
    """Read and validate a weights file written by ``torch.save`` (never executes pickled code)."""
    import torch

    if not os.path.isfile(path):
        raise DataError(f"{path}: VGGish weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file that is not its format
        detail = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise DataError(f"{path}: not a PyTorch weights file ({detail})") from None
    return check_state_dict(state, path)


def load_vggish(
    weights: str | Mapping[str, Any], device: str | torch.device = "cpu"
) -> torch.nn.Module:
    """The network with ``weights`` (a file or a state dict) in eval mode on ``device``."""
    state = (
        load_state_dict_file(weights)
        if isinstance(weights, str)
        else check_state_dict(weights, "weights")
    )
    import torch

    net = build_network()
    net.load_state_dict(state, strict=True)
    # NHWC activations: oneDNN's CPU convolutions run about twice as fast (cuDNN likes it too)
    return net.eval().to(device=device, memory_format=torch.channels_last)


def embed(net: torch.nn.Module, log_mel: torch.Tensor) -> torch.Tensor:
    """(B, frames, 64) log-mel patches -> (B, 512) features, without autograd."""
    import torch

    x = log_mel.unsqueeze(1).contiguous(memory_format=torch.channels_last)  # (B, 1, frames, 64)
    with torch.inference_mode():
        return net(x)  # (B, 512)


def from_torchvggish(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Rename harritaylor/torchvggish's ``features.N.*`` to ours; drops the fc ``embeddings.*``."""
    out: dict[str, Any] = {}
    for name, index in _TORCHVGGISH_INDEX.items():
        for part in ("weight", "bias"):
            key = f"features.{index}.{part}"
            if key not in state:
                raise DataError(f"torchvggish checkpoint: missing key {key!r} ({name}.{part})")
            out[f"{name}.{part}"] = state[key]
    return check_state_dict(out, "torchvggish checkpoint")


def from_tf_variables(arrays: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """TF-Slim variables (``vggish/conv1/weights`` HWIO, ``.../biases``) to our OIHW tensors."""
    import torch

    out: dict[str, Any] = {}
    for name, scope in _TF_SCOPE.items():
        for part, tf_part in (("weight", "weights"), ("bias", "biases")):
            key = f"{scope}/{tf_part}"
            if key not in arrays:
                raise DataError(f"TF variables: missing {key!r} ({name}.{part})")
            value = np.asarray(arrays[key])
            if part == "weight":
                if value.ndim != 4:
                    raise DataError(f"TF variables: {key} has shape {value.shape}, expected HWIO")
                value = value.transpose(3, 2, 0, 1)  # (3, 3, in, out) -> (out, in, 3, 3)
            out[f"{name}.{part}"] = torch.from_numpy(np.ascontiguousarray(value))
    return check_state_dict(out, "TF variables")
