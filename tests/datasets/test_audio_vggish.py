"""VGGish conv stack: shapes, TF semantics (SAME pooling, HWIO kernels), weights files, conversion."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from avspot.datasets.audio import vggish
from avspot.datasets.errors import DataError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "scripts", "convert_vggish_weights.py")


def _convert_main(argv: list[str]) -> int:
    """The conversion script's ``main``, in this process (one test runs it as a subprocess)."""
    spec = importlib.util.spec_from_file_location("convert_vggish_weights", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


@pytest.fixture(autouse=True)
def _few_threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def weights_file(tmp_path) -> str:
    path = str(tmp_path / "vggish_random.pt")
    torch.save(vggish.random_state_dict(seed=1), path)
    return path


def test_output_shape_and_conv4_2_grid(weights_file):
    net = vggish.load_vggish(weights_file)
    seen = {}
    net.conv4_2.register_forward_hook(lambda m, i, o: seen.setdefault("conv4_2", o))
    x = torch.randn(3, 46, 64)  # (B, frames, bands)
    out = vggish.embed(net, x)
    assert out.shape == (3, 512) and out.dtype == torch.float32
    # SAME (ceil) pooling: 46 -> 23 -> 12 -> 6 frames, 64 -> 32 -> 16 -> 8 bands
    assert tuple(seen["conv4_2"].shape) == (3, 512, 6, 8)
    # the output is conv4_2 after its ReLU, averaged over time and frequency
    expected = torch.relu(seen["conv4_2"]).mean(dim=(2, 3))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    assert (out >= 0).all()


def test_pooling_is_tensorflow_same():
    """A 2x2/2 max pool over an odd size keeps a last, partial window (TF SAME), not floor."""
    net = vggish.build_network()
    x = torch.randn(1, 64, 23, 32)
    got = net.pool2(x).numpy()[0]
    padded = np.pad(x.numpy()[0], ((0, 0), (0, 1), (0, 0)), constant_values=-np.inf)
    ref = padded.reshape(64, 12, 2, 16, 2).max(axis=(2, 4))
    np.testing.assert_array_equal(got, ref)


def test_deterministic_and_batch_independent(weights_file):
    net = vggish.load_vggish(weights_file)
    x = torch.randn(6, 46, 64, generator=torch.Generator().manual_seed(0))
    a = vggish.embed(net, x)
    b = vggish.embed(vggish.load_vggish(weights_file), x)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(vggish.embed(net, x[:2]), a[:2], rtol=1e-5, atol=1e-6)


def test_expected_shapes():
    shapes = vggish.expected_shapes()
    assert list(shapes)[:2] == ["conv1.weight", "conv1.bias"]
    assert shapes["conv3_1.weight"] == (256, 128, 3, 3)
    assert shapes["conv4_2.weight"] == (512, 512, 3, 3) and shapes["conv4_2.bias"] == (512,)
    assert sum(int(np.prod(s)) for s in shapes.values()) == 4_499_712


# ---- bad weights ---------------------------------------------------------------------------


def test_missing_weights_file(tmp_path):
    path = str(tmp_path / "nope.pt")
    with pytest.raises(DataError, match=r"nope\.pt: VGGish weights file not found"):
        vggish.load_state_dict_file(path)


def test_not_a_torch_file(tmp_path):
    path = tmp_path / "weights.pt"
    path.write_text("not a checkpoint\n")
    with pytest.raises(DataError, match=r"weights\.pt: not a PyTorch weights file") as e:
        vggish.load_state_dict_file(str(path))
    assert "\n" not in str(e.value)


def test_not_a_state_dict(tmp_path):
    path = str(tmp_path / "list.pt")
    torch.save([torch.zeros(3)], path)
    with pytest.raises(DataError, match=r"list\.pt: not a state dict .* list"):
        vggish.load_state_dict_file(path)


def test_wrong_shape_names_the_key(tmp_path):
    state = vggish.random_state_dict()
    state["conv3_2.weight"] = torch.zeros(256, 128, 3, 3)
    path = str(tmp_path / "bad_shape.pt")
    torch.save(state, path)
    with pytest.raises(DataError) as e:
        vggish.load_state_dict_file(path)
    msg = str(e.value)
    assert "bad_shape.pt" in msg and "conv3_2.weight" in msg
    assert "(256, 128, 3, 3)" in msg and "(256, 256, 3, 3)" in msg


def test_missing_and_unexpected_keys(tmp_path):
    state = vggish.random_state_dict()
    del state["conv4_1.bias"]
    path = str(tmp_path / "missing.pt")
    torch.save(state, path)
    with pytest.raises(DataError, match=r"missing\.pt: missing key 'conv4_1\.bias'"):
        vggish.load_state_dict_file(path)
    state = vggish.random_state_dict()
    state["fc1.weight"] = torch.zeros(2, 2)
    torch.save(state, path)
    with pytest.raises(DataError, match=r"unexpected key 'fc1\.weight'"):
        vggish.load_state_dict_file(path)


def test_nan_and_integer_weights(tmp_path):
    path = str(tmp_path / "w.pt")
    state = vggish.random_state_dict()
    state["conv2.bias"][0] = float("nan")
    torch.save(state, path)
    with pytest.raises(DataError, match=r"conv2\.bias holds NaN"):
        vggish.load_state_dict_file(path)
    state = vggish.random_state_dict()
    state["conv1.bias"] = torch.zeros(64, dtype=torch.int64)
    torch.save(state, path)
    with pytest.raises(DataError, match=r"conv1\.bias has dtype torch\.int64"):
        vggish.load_state_dict_file(path)


# ---- the public checkpoints ----------------------------------------------------------------


def _fake_torchvggish(seed: int = 0) -> dict[str, torch.Tensor]:
    """harritaylor/torchvggish's vggish-10086976.pth keys and shapes (fc layers as cheap views)."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = OrderedDict()
    for index, (cin, cout) in zip(
        (0, 3, 6, 8, 11, 13),
        ((1, 64), (64, 128), (128, 256), (256, 256), (256, 512), (512, 512)),
        strict=True,
    ):
        state[f"features.{index}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * 0.05
        state[f"features.{index}.bias"] = torch.randn(cout, generator=g) * 0.01
    # real shapes; expand() keeps the file tiny (one stored element per tensor)
    for index, (nin, nout) in zip(
        (0, 2, 4), ((12288, 4096), (4096, 4096), (4096, 128)), strict=True
    ):
        state[f"embeddings.{index}.weight"] = torch.zeros(1).expand(nout, nin)
        state[f"embeddings.{index}.bias"] = torch.zeros(1).expand(nout)
    return state


def _torchvggish_features() -> nn.Sequential:
    """The port's ``features`` stack (floor pooling), to check our mapping of its indices."""
    layers: list[nn.Module] = []
    cin = 1
    for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU()]
            cin = int(v)
    return nn.Sequential(*layers)


def test_convert_torchvggish_checkpoint(tmp_path):
    src = str(tmp_path / "vggish-10086976.pth")
    fake = _fake_torchvggish()
    torch.save(fake, src)
    assert os.path.getsize(src) < 30_000_000
    dst = str(tmp_path / "vggish_conv.pt")
    r = subprocess.run(
        [sys.executable, SCRIPT, src, dst], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert "12 tensors" in r.stdout and "4,499,712 parameters" in r.stdout
    state = vggish.load_state_dict_file(dst)
    torch.testing.assert_close(state["conv3_2.weight"], fake["features.8.weight"])
    torch.testing.assert_close(state["conv4_2.bias"], fake["features.13.bias"])
    # our network on a 96-frame patch (even sizes: floor = ceil pooling) equals the port's
    # features up to conv4_2's ReLU (index 14), averaged over time and frequency
    port = _torchvggish_features()
    port.load_state_dict({k[9:]: v for k, v in fake.items() if k.startswith("features.")})
    x = torch.randn(2, 96, 64, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        expected = port[:15](x.unsqueeze(1)).mean(dim=(2, 3))
    torch.testing.assert_close(vggish.embed(vggish.load_vggish(dst), x), expected)
    # our loader points a user who passes the port's file at the converter
    with pytest.raises(DataError, match="torchvggish checkpoint.*convert_vggish_weights"):
        vggish.load_state_dict_file(src)
    # an existing output is kept unless --force
    assert _convert_main([src, dst]) == 2
    assert _convert_main([src, dst, "--force"]) == 0


def test_convert_rejects_bad_checkpoints(tmp_path, capsys):
    bad = dict(_fake_torchvggish())
    bad["features.11.weight"] = torch.zeros(512, 128, 3, 3)
    src = str(tmp_path / "bad.pth")
    torch.save(bad, src)
    assert _convert_main([src, str(tmp_path / "out.pt")]) == 2
    err = capsys.readouterr().err
    assert "bad.pth" in err and "conv4_1.weight" in err and "(512, 128, 3, 3)" in err
    assert not (tmp_path / "out.pt").exists()
    del bad["features.0.bias"]
    with pytest.raises(DataError, match=r"missing key 'features\.0\.bias'"):
        vggish.from_torchvggish(bad)


def _conv_same_tf(x: np.ndarray, kernel_hwio: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """TensorFlow conv2d (NHWC input, HWIO kernel, SAME, stride 1) written out, then ReLU."""
    n, h, w, _ = x.shape
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros((n, h, w, kernel_hwio.shape[3]))
    for dy in range(3):
        for dx in range(3):
            out += padded[:, dy : dy + h, dx : dx + w, :] @ kernel_hwio[dy, dx]
    return np.maximum(out + bias, 0.0)


def test_convert_tf_variables(tmp_path):
    rng = np.random.default_rng(0)
    scopes = {
        "conv1": "vggish/conv1",
        "conv2": "vggish/conv2",
        "conv3_1": "vggish/conv3/conv3_1",
        "conv3_2": "vggish/conv3/conv3_2",
        "conv4_1": "vggish/conv4/conv4_1",
        "conv4_2": "vggish/conv4/conv4_2",
    }
    arrays = {}
    for name, cin, cout in vggish.CONVS:
        arrays[f"{scopes[name]}/weights"] = (rng.standard_normal((3, 3, cin, cout)) * 0.05).astype(
            np.float32
        )
        arrays[f"{scopes[name]}/biases"] = (rng.standard_normal(cout) * 0.01).astype(np.float32)
    src = str(tmp_path / "vggish_tf.npz")
    np.savez(src, **arrays)
    dst = str(tmp_path / "from_tf.pt")
    assert _convert_main([src, dst]) == 0
    net = vggish.load_vggish(dst)
    # conv1 with the converted kernel computes what TF computes with the HWIO one
    x = rng.standard_normal((2, 10, 64, 1)).astype(np.float32)  # NHWC: (B, frames, bands, 1)
    ref = _conv_same_tf(x, arrays["vggish/conv1/weights"], arrays["vggish/conv1/biases"])
    with torch.inference_mode():
        got = net.relu1(net.conv1(torch.from_numpy(x).permute(0, 3, 1, 2)))  # (B, 64, 10, 64)
    np.testing.assert_allclose(got.permute(0, 2, 3, 1).numpy(), ref, rtol=1e-4, atol=1e-5)
    del arrays["vggish/conv4/conv4_2/biases"]
    with pytest.raises(DataError, match="vggish/conv4/conv4_2/biases"):
        vggish.from_tf_variables(arrays)
