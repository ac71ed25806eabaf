"""Contract suite: every registered pooling x every registered fusion method, tiny tensors."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from avspot.avmodels.catalog import catalog
from avspot.avmodels.config import ModelConfig
from avspot.avmodels.fusion import (
    AVModel,
    build_model,
    combine_trained,
    component_configs,
    count_parameters,
)
from avspot.avmodels.fusion_methods import FUSED, FUSIONS, MERGE_POINTS
from avspot.avmodels.pooling import POOLINGS
from avspot.avmodels.sliding import windows_reference

DV, DA, W, K, OUT, B = 12, 10, 6, 4, 8, 4
POOLS = sorted(POOLINGS)
METHODS = list(FUSIONS)
EARLY = [m for m, f in FUSIONS.items() if f.merge == "frames"]


pytestmark = pytest.mark.usefixtures("one_thread")


def cfg(fusion: str, pooling: str = "netvlad", **kw: object) -> ModelConfig:
    base = dict(
        fusion=fusion, pooling=pooling, clusters=K, window_s=W / 2, fps=2.0, video_dim=DV,
        audio_dim=DA, pool_out=OUT, cnn_kernel=3,
    )  # fmt: skip
    base.update(kw)
    return ModelConfig(**base)  # type: ignore[arg-type]


def make(fusion: str, pooling: str = "netvlad", seed: int = 0, **kw: object) -> AVModel:
    torch.manual_seed(seed)
    return build_model(cfg(fusion, pooling, **kw))


def inputs(b: int = B, t: int = W, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, DV, generator=g), torch.randn(b, t, DA, generator=g)


def randomize_bn(model: nn.Module) -> None:
    g = torch.Generator().manual_seed(7)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.running_mean.normal_(generator=g)
            m.running_var.uniform_(0.5, 2.0, generator=g)


# The seed paper's methods (section 3.3, Figure 1) and the two baselines: the oracle the
# registry must cover; a method added later is covered by the tests that iterate FUSIONS.
SEED_METHODS = {
    "video": (None, None),
    "audio": (None, None),
    "prob_product": (1, "probs"),
    "logit_mean": (2, "logits"),
    "late_joint": (3, "logits"),
    "before_fc": (4, "dropped"),
    "before_dropout": (5, "pooled"),
    "early_1024": (6, "frames"),
    "early_512": (7, "frames"),
}


def test_registry_has_the_seed_methods_with_merge_points() -> None:
    assert {n: (FUSIONS[n].seed_method, FUSIONS[n].merge) for n in SEED_METHODS} == SEED_METHODS
    numbers = sorted(f.seed_method for f in FUSIONS.values() if f.seed_method is not None)
    assert numbers == list(range(1, 8))  # the seed's seven methods, each once
    assert all(f.merge in (None, *MERGE_POINTS) for f in FUSIONS.values())


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("pooling", POOLS)
def test_contract(pooling: str, method: str) -> None:
    """Shapes, gradients to every trained branch, dropout only in training, eval-time sliding."""
    model = make(method, pooling)
    assert model.config.fusion == method and isinstance(model.modalities, tuple)
    video, audio = inputs()
    # shapes; a single-modality model ignores (and accepts None for) the other input
    model.eval()
    out = model(video, audio)
    assert out.shape == (B, 4) and torch.isfinite(out).all()
    if model.modalities == ("video",):
        assert torch.equal(model(video, None), out)
    if model.modalities == ("audio",):
        assert torch.equal(model(None, audio), out)
    # eval mode: deterministic; train mode: dropout draws differ
    assert torch.equal(model(video, audio), out)
    model.train()
    torch.manual_seed(11)
    t1 = model(video, audio)
    torch.manual_seed(12)
    t2 = model(video, audio)
    assert not torch.allclose(t1, t2)
    # gradients reach every modality the model reads, and every parameter
    v = video.clone().requires_grad_(True)
    a = audio.clone().requires_grad_(True)
    model.zero_grad()
    model(v, a).square().sum().backward()
    for name, x in (("video", v), ("audio", a)):
        if name in model.modalities:
            assert x.grad is not None and x.grad.abs().sum() > 0, name
        else:
            assert x.grad is None, name
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname
    # sliding inference equals scoring every edge-padded window independently
    randomize_bn(model)
    model.eval()
    g = torch.Generator().manual_seed(3)
    seq_v, seq_a = torch.randn(17, DV, generator=g), torch.randn(17, DA, generator=g)
    for stride in (1, 3):
        ref = model(windows_reference(seq_v, W, stride), windows_reference(seq_a, W, stride))
        got = model.forward_sequence(seq_v, seq_a, W, stride)
        assert got.shape == (-(-17 // stride), 4)
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("head", [{"pool_out": None, "gating": False}, {"gating": False}])
@pytest.mark.parametrize("method", ["video", "before_fc", "late_joint", "early_512"])
@pytest.mark.parametrize("pooling", ["netvlad", "netrvlad"])
def test_forward_sequence_with_linear_heads(pooling: str, method: str, head: dict) -> None:
    """Heads without gating take the fused path that never forms window descriptors."""
    model = make(method, pooling, **head)
    randomize_bn(model)
    model.eval()
    g = torch.Generator().manual_seed(5)
    seq_v, seq_a = torch.randn(23, DV, generator=g), torch.randn(23, DA, generator=g)
    for stride in (1, 2, 7):
        ref = model(windows_reference(seq_v, W, stride), windows_reference(seq_a, W, stride))
        got = model.forward_sequence(seq_v, seq_a, stride_frames=stride)
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_model(method: str) -> None:
    a, b = make(method, seed=5), make(method, seed=5)
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(pa, pb), name
    video, audio = inputs()
    assert torch.equal(a.eval()(video, audio), b.eval()(video, audio))
    c = make(method, seed=6)
    assert not all(
        torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters(), strict=True)
    )


@pytest.mark.parametrize("method", EARLY)
@pytest.mark.parametrize("pooling", POOLS)
def test_early_fusion_concatenates_features_not_time(pooling: str, method: str) -> None:
    model = make(method, pooling).eval()
    seen: list[torch.Tensor] = []
    model.pool[FUSED].register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    video, audio = inputs()
    model(video, audio)
    # the fused pooling sees W frames of Dv + Da features, frame t = [video_t, audio_t]
    assert seen[0].shape == (B, W, DV + DA)
    assert torch.equal(seen[0], torch.cat([video, audio], dim=-1))


@pytest.mark.parametrize("method", EARLY)
@pytest.mark.parametrize("pooling", POOLS)
def test_early_fusion_pairs_audio_with_its_video_frame(pooling: str, method: str) -> None:
    """With equal widths a time-axis concatenation would also run; these checks catch it.

    Exchanging the audio and video vectors of one frame leaves the multiset of 2W frames of a
    time concatenation unchanged (so mean/max/NetVLAD outputs too), but moves features to
    other input dimensions of a feature concatenation. Permuting the frames of both streams
    together changes nothing for an orderless pooling; the audio path matters.
    """
    model = make(method, pooling, audio_dim=DV).eval()
    g = torch.Generator().manual_seed(8)
    video, audio = torch.randn(B, W, DV, generator=g), torch.randn(B, W, DV, generator=g)
    out = model(video, audio)
    v2, a2 = video.clone(), audio.clone()
    v2[:, 0], a2[:, 0] = audio[:, 0], video[:, 0]
    assert not torch.allclose(model(v2, a2), out, atol=1e-6)
    assert not torch.allclose(model(video, torch.zeros_like(audio)), out, atol=1e-6)
    if pooling != "cnn":  # every other pooling ignores frame order within a window
        perm = torch.randperm(W, generator=g)
        torch.testing.assert_close(model(video[:, perm], audio[:, perm]), out)


def test_early_1024_pools_twice_as_wide_as_early_512() -> None:
    assert make("early_1024").pool[FUSED].out_dim == 2 * OUT
    assert make("early_512").pool[FUSED].out_dim == OUT
    assert make("early_1024").pool[FUSED].input_dim == DV + DA


def test_merge_points_decide_what_is_per_branch() -> None:
    keys = {
        m: tuple(tuple(sorted(getattr(make(m), s).keys())) for s in ("pool", "dropout", "fc"))
        for m in METHODS
    }
    both, fused = ("audio", "video"), (FUSED,)
    assert keys["video"] == (("video",),) * 3
    assert keys["audio"] == (("audio",),) * 3
    assert keys["late_joint"] == keys["logit_mean"] == keys["prob_product"] == (both,) * 3
    assert keys["before_fc"] == (both, both, fused)
    assert keys["before_dropout"] == (both, fused, fused)
    assert keys["early_512"] == keys["early_1024"] == (fused, fused, fused)


def test_combine_trained_logit_mean_and_prob_product() -> None:
    video_model = make("video", seed=1).eval()
    audio_model = make("audio", seed=2).eval()
    video, audio = inputs()
    lv, la = video_model(video, None), audio_model(None, audio)
    mean = combine_trained(video_model, audio_model, "logit_mean")
    prod = combine_trained(video_model, audio_model, "prob_product")
    assert mean.requires_pretrained and prod.requires_pretrained
    assert not mean.training
    torch.testing.assert_close(mean(video, audio), (lv + la) / 2)
    torch.testing.assert_close(
        torch.sigmoid(prod(video, audio)), torch.sigmoid(lv) * torch.sigmoid(la)
    )
    # the trained models are copied, not shared
    assert mean.pool["video"] is not video_model.pool["video"]
    assert count_parameters(mean) == count_parameters(video_model) + count_parameters(audio_model)
    # a rebuilt container loads the combined state (reloading a saved combined model)
    rebuilt = build_model(mean.config)
    rebuilt.load_state_dict(mean.state_dict())
    torch.testing.assert_close(rebuilt.eval()(video, audio), mean(video, audio))
    seq_v, seq_a = torch.randn(11, DV), torch.randn(11, DA)
    ref = prod(windows_reference(seq_v, W, 2), windows_reference(seq_a, W, 2))
    torch.testing.assert_close(prod.forward_sequence(seq_v, seq_a, W, 2), ref)


def test_prob_product_is_stable_for_confident_models() -> None:
    video_model, audio_model = make("video").eval(), make("audio").eval()
    with torch.no_grad():
        video_model.fc["video"].bias.fill_(40.0)
        audio_model.fc["audio"].bias.fill_(-40.0)
    prod = combine_trained(video_model, audio_model, "prob_product")
    assert torch.isfinite(prod(*inputs())).all()


def test_combine_trained_rejects_bad_inputs() -> None:
    video_model, audio_model = make("video"), make("audio")
    pairs = sorted(m for m, f in FUSIONS.items() if f.requires_pretrained)
    with pytest.raises(ValueError, match=re.escape(f"valid: {pairs}")):
        combine_trained(video_model, audio_model, "before_fc")
    with pytest.raises(ValueError, match="audio_model must be a audio-only"):
        combine_trained(video_model, video_model, "logit_mean")
    with pytest.raises(ValueError, match="clusters"):
        combine_trained(video_model, make("audio", clusters=K + 1), "logit_mean")


@pytest.mark.parametrize("method", METHODS)
def test_requires_pretrained_means_combined_from_two_trained_models(method: str) -> None:
    """Every method: flagged ``requires_pretrained`` exactly when ``combine_trained`` builds it
    from a trained video and a trained audio model (the seed's methods 1 and 2 among them)."""
    flagged = FUSIONS[method].requires_pretrained
    assert build_model(cfg(method)).requires_pretrained == flagged
    if flagged:
        combined = combine_trained(make("video"), make("audio"), method)
        assert combined.requires_pretrained and combined.config.fusion == method
    else:
        with pytest.raises(ValueError, match="does not combine trained models"):
            combine_trained(make("video"), make("audio"), method)


def test_requires_pretrained_flag_and_component_configs() -> None:
    assert {f.seed_method for f in FUSIONS.values() if f.requires_pretrained} >= {1, 2}
    c = cfg("logit_mean")
    assert build_model(c).requires_pretrained
    assert not build_model(cfg("late_joint")).requires_pretrained
    parts = component_configs(c)
    assert {m: p.fusion for m, p in parts.items()} == {"video": "video", "audio": "audio"}
    assert parts["video"].clusters == c.clusters


def test_build_model_from_dict_and_unknown_fusion() -> None:
    assert build_model({"fusion": "audio", "clusters": 2}).modalities == ("audio",)
    with pytest.raises(ValueError, match="fusion: unknown value 'mid'") as err:
        build_model({"fusion": "mid"})
    assert str(sorted(FUSIONS)) in str(err.value)


def test_input_checks() -> None:
    model = make("before_fc").eval()
    video, audio = inputs()
    with pytest.raises(ValueError, match="needs audio"):
        model(video, None)
    with pytest.raises(ValueError, match="D=12"):
        model(audio, audio)
    with pytest.raises(ValueError, match="same number of frames"):
        model.forward_sequence(torch.randn(9, DV), torch.randn(8, DA))
    with pytest.raises(RuntimeError, match="eval mode"):
        model.train().forward_sequence(torch.randn(9, DV), torch.randn(9, DA))


def test_count_parameters_on_meta_device_matches() -> None:
    real = make("before_fc")
    with torch.device("meta"):
        meta = build_model(real.config)
    assert (
        count_parameters(meta)
        == count_parameters(real)
        == sum(p.numel() for p in real.parameters())
    )


def test_catalog_lists_registries() -> None:
    text = catalog()
    for name in [*POOLINGS, *FUSIONS]:
        assert name in text
    assert "netvlad k=512 20s" in text and "135,008,260" in text
