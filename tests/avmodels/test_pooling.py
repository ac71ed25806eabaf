"""Contract tests over every registered pooling layer, on tiny tensors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from avspot.avmodels.pooling import POOLINGS, Pooling, create_pooling
from avspot.avmodels.sliding import edge_pad, num_windows, window_sums, windows_reference

D, W, K, OUT = 12, 6, 4, 8
HEADS = {
    "proj+gating": {"pool_out": OUT, "gating": True},
    "proj": {"pool_out": OUT, "gating": False},
    "raw": {"pool_out": None, "gating": False},
}
NAMES = sorted(POOLINGS)


pytestmark = pytest.mark.usefixtures("one_thread")


def make(name: str, head: str = "proj+gating", seed: int = 0, dim: int = D) -> Pooling:
    torch.manual_seed(seed)
    return create_pooling(name, dim, W, clusters=K, kernel_frames=3, **HEADS[head])


def randomize_bn(module: nn.Module, gamma: float = 1.0) -> None:
    """Non-trivial running statistics and affine parameters (eval mode uses them)."""
    g = torch.Generator().manual_seed(1)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.running_mean.normal_(generator=g)
            m.running_var.uniform_(0.5, 2.0, generator=g)
            m.weight.data.normal_(generator=g).mul_(gamma)
            m.bias.data.normal_(generator=g)


# The seed paper's poolings (Vanderplaetse & Dupont 2020, with SoccerNet's NetVLAD/NetRVLAD):
# the oracle the registry must cover; a pooling added later is covered by the tests that
# iterate POOLINGS.
SEED_POOLINGS = {"mean", "max", "cnn", "softdbow", "netfv", "netvlad", "netrvlad"}


def test_registry_has_the_seven_seed_poolings() -> None:
    assert set(POOLINGS) >= SEED_POOLINGS
    for name, cls in POOLINGS.items():  # each registered under the name it answers to
        assert issubclass(cls, Pooling) and cls.name == name


def test_unknown_pooling_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown pooling 'vlad'") as err:
        create_pooling("vlad", D, W)
    assert str(sorted(POOLINGS)) in str(err.value)


def test_create_pooling_passes_only_accepted_kwargs() -> None:
    pool = create_pooling("mean", D, W, clusters=K, pool_out=OUT, gating=True, bogus=1)
    assert pool.out_dim == D


@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize("name", NAMES)
def test_forward_shape_and_out_dim(name: str, head: str) -> None:
    pool = make(name, head)
    y = pool(torch.randn(3, W, D))
    assert y.shape == (3, pool.out_dim)
    assert torch.isfinite(y).all()
    if head != "raw" and name not in ("mean", "max"):
        assert pool.out_dim == OUT


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name: str) -> None:
    pool = make(name).train()
    x = torch.randn(4, W, D, requires_grad=True)
    pool(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for pname, p in pool.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_layer(name: str) -> None:
    a, b = make(name, seed=3), make(name, seed=3)
    for (na, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(pa, pb), na


def test_edge_pad_and_window_centres() -> None:
    n, w, s = 7, 4, 2
    x = torch.arange(n, dtype=torch.float32).unsqueeze(1)  # frame index as its feature
    xp = edge_pad(x, w)
    assert xp.shape == (n + w, 1)
    assert xp[: w // 2].eq(0).all() and xp[-(w - w // 2) :].eq(n - 1).all()
    windows = windows_reference(x, w, s)
    assert windows.shape == (num_windows(n, s), w, 1) == (4, 4, 1)
    # window i is centred on frame i * s: its element W // 2 is that frame
    assert windows[:, w // 2, 0].tolist() == [0.0, 2.0, 4.0, 6.0]


def test_window_sums_match_direct_sums() -> None:
    values = torch.randn(20, 3, 2)
    for w, s in [(5, 1), (5, 2), (1, 1), (7, 9)]:
        n = num_windows(20 - w, s)
        for max_bytes in (64, 1 << 20):  # many small chunks, one chunk
            got = window_sums(values, w, s, n, weights=values[:, :1], max_bytes=max_bytes)
            prod = values * values[:, :1]
            ref = torch.stack([prod[i * s : i * s + w].sum(0) for i in range(n)])
            torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-6)


SLIDING_CASES = [(23, 6, 1), (23, 6, 2), (23, 5, 3), (23, 1, 1), (23, 7, 4), (9, 30, 1), (3, 6, 5)]


@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize("name", NAMES)
def test_forward_sliding_equals_reference_windows(name: str, head: str) -> None:
    pool = make(name, head)
    randomize_bn(pool)
    pool.eval()
    g = torch.Generator().manual_seed(2)
    for n, w, s in SLIDING_CASES:
        if name == "cnn" and w < pool.kernel_frames:
            continue
        x = torch.randn(n, D, generator=g) * 3 + 1
        ref = pool(windows_reference(x, w, s))  # (n_windows, out_dim)
        got = pool.forward_sliding(x, w, s)
        assert got.shape == (num_windows(n, s), pool.out_dim)
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
        weight, bias = torch.randn(3, pool.out_dim, generator=g), torch.randn(3, generator=g)
        lin = pool.forward_sliding_linear(x, w, s, weight, bias)
        torch.testing.assert_close(lin, ref @ weight.t() + bias, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["netvlad", "netrvlad"])
def test_fused_sliding_keeps_precision_of_nearly_empty_clusters(name: str) -> None:
    """Very peaked assignments: clusters nearly absent from a window still count fully after
    the intra-normalisation, so window sums must not lose them to cancellation. In float64,
    so that the reference itself keeps assignments of 1e-60."""
    pool = make(name, "raw").double()
    randomize_bn(pool, gamma=25.0)  # softmax logits spread over +-75
    pool.eval()
    x = torch.randn(60, D, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    weight = torch.randn(2, pool.out_dim, generator=torch.Generator().manual_seed(5)).double()
    got = pool.forward_sliding_linear(x, W, 1, weight)
    ref = pool(windows_reference(x, W, 1)) @ weight.t()
    torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_forward_sliding_needs_eval_mode(name: str) -> None:
    pool = make(name).train()
    with pytest.raises(RuntimeError, match="eval mode"):
        pool.forward_sliding(torch.randn(10, D), W, 1)


def test_forward_sliding_rejects_bad_arguments() -> None:
    pool = make("netvlad").eval()
    with pytest.raises(ValueError, match="stride_frames"):
        pool.forward_sliding(torch.randn(10, D), W, 0)
    with pytest.raises(ValueError, match="12-d"):
        pool.forward_sliding(torch.randn(10, D + 1), W, 1)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        pool.forward_sliding(torch.randn(2, 10, D), W, 1)
    with pytest.raises(ValueError, match="weight"):
        pool.forward_sliding_linear(torch.randn(10, D), W, 1, torch.randn(2, OUT + 1))


def test_netvlad_matches_the_loupe_formula() -> None:
    """Independent check of NetVLAD's math on one window, written out loop by loop."""
    pool = make("netvlad", "raw").eval()
    x = torch.randn(1, W, D)
    a = pool.assign(x)[0]  # (W, K)
    v = torch.stack([(a[:, k : k + 1] * (x[0] - pool.centers[k])).sum(0) for k in range(K)])
    v = v / v.norm(dim=1, keepdim=True)
    v = v.flatten() / v.flatten().norm()
    torch.testing.assert_close(pool(x)[0], v, rtol=1e-5, atol=1e-6)
