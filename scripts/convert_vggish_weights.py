"""Convert a public VGGish checkpoint into the state dict ``avspot data extract-audio`` loads.

    .venv/bin/python scripts/convert_vggish_weights.py vggish-10086976.pth vggish_conv.pt
    .venv/bin/python scripts/convert_vggish_weights.py vggish_tf.npz vggish_conv.pt

Works offline on a file you downloaded; nothing is fetched. Accepted inputs:

* ``.pth``/``.pt``: the PyTorch port harritaylor/torchvggish's release file
  https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth
  (keys ``features.{0,3,6,8,11,13}.{weight,bias}``; the fully connected ``embeddings.*`` are
  dropped, the extractor stops at conv4_2).
* ``.npz``: the TF-Slim variables of the AudioSet release's
  https://storage.googleapis.com/audioset/vggish_model.ckpt, exported once with TensorFlow
  (reading a TF checkpoint needs TensorFlow; this script does not)::

      import numpy as np, tensorflow as tf
      r = tf.train.load_checkpoint("vggish_model.ckpt")
      np.savez("vggish_tf.npz", **{n: r.get_tensor(n) for n in r.get_variable_to_shape_map()
                                   if n.startswith("vggish/conv")})

The output holds ``conv1.weight`` ... ``conv4_2.bias`` (float32, PyTorch OIHW kernels), checked
against the network's shapes, written atomically; the script prints its SHA-256. Exit code 2 with
a one-line message on bad input.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import zipfile

import numpy as np

from avspot.datasets.errors import DataError


def convert(src: str) -> dict:
    """Our state dict (name -> float32 tensor) from a torchvggish .pth or a TF-variables .npz."""
    from avspot.datasets.audio.vggish import from_tf_variables, from_torchvggish

    if not os.path.isfile(src):
        raise DataError(f"{src}: checkpoint not found")
    if src.lower().endswith(".npz"):
        try:
            with np.load(src, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise DataError(f"{src}: not a readable .npz ({' '.join(str(exc).split())})") from None
        try:
            return from_tf_variables(arrays)
        except DataError as exc:
            raise DataError(f"{src}: {exc}") from None
    import torch

    try:
        state = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file that is not its format
        detail = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise DataError(f"{src}: not a PyTorch checkpoint ({detail})") from None
    if not isinstance(state, dict):
        raise DataError(f"{src}: expected a state dict, found a {type(state).__name__}")
    try:
        return from_torchvggish(state)
    except DataError as exc:
        raise DataError(f"{src}: {exc}") from None


def save(state: dict, dst: str) -> str:
    """``torch.save`` ``state`` to ``dst`` atomically; return the file's SHA-256."""
    import torch

    folder = os.path.dirname(os.path.abspath(dst))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(dst)}.tmp-{os.getpid()}")
    try:
        torch.save(state, tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    with open(dst, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="vggish-10086976.pth (torchvggish) or a TF-variables .npz")
    parser.add_argument("dst", help="output state dict, e.g. vggish_conv.pt")
    parser.add_argument("--force", action="store_true", help="overwrite an existing DST")
    args = parser.parse_args(argv)
    try:
        if os.path.exists(args.dst) and not args.force:
            raise DataError(f"{args.dst}: exists (pass --force to overwrite)")
        state = convert(args.src)
        digest = save(state, args.dst)
    except DataError as exc:
        print(f"convert_vggish_weights: error: {exc}", file=sys.stderr)
        return 2
    params = sum(v.numel() for v in state.values())
    print(f"wrote {args.dst}: {len(state)} tensors, {params:,} parameters, sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
