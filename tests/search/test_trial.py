"""The trial function's own decisions, without Ray: its typed config and its device."""

from __future__ import annotations

import pytest
import torch

from avspot.avmodels.device import resolve_device
from avspot.avmodels.train_config import TrainConfig
from avspot.datasets.errors import DataError
from avspot.search.tuning import trial as T


def _ctx(**kw) -> T.TrialContext:
    base = TrainConfig(monitor="val_average_map", seed=3, val_stride_s=4.0).merge({"max_epochs": 5})
    return T.TrialContext(base=base, data_uri="table", metric="val_average_map", **kw)


def test_suggestions_merge_typed_into_the_base_and_fixed_values_win() -> None:
    ctx = _ctx(fixed={"max_epochs": 2, "lr": 0.01})
    cfg = T.trial_config(
        {"fusion": "before_fc", "clusters": 16, "_pooling_k": "x", "lr": 1e-4}, ctx
    )
    assert (cfg.model.fusion, cfg.model.clusters) == ("before_fc", 16)
    assert (cfg.seed, cfg.val_stride_s, cfg.max_epochs, cfg.lr) == (3, 4.0, 2, 0.01)
    with pytest.raises(DataError, match="clusters='16': expected int, not a string"):
        T.trial_config({"clusters": "16"}, ctx)  # nothing crosses into a trial as a string


@pytest.mark.parametrize(("gpus", "device", "want"), [(0.0, "auto", "cpu"), (0.5, "auto", "auto"),
                                                      (0.0, "cuda:0", "cuda:0")])  # fmt: skip
def test_a_trial_without_a_gpu_trains_on_the_cpu_when_cuda_is_visible(
    monkeypatch, gpus, device, want
) -> None:
    """Ray does not hide the cards from a trial that asked for none; with device=auto such a
    trial must not take one unreserved (and account no GPU time for it)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU node, simulated
    monkeypatch.setattr(T, "_held", lambda resource: gpus if resource == "GPU" else 1.0)
    cfg = TrainConfig().merge({"device": device})
    assert T._device(cfg) == want
    if want == "cpu":
        merged = cfg.merge({"device": T._device(cfg)})
        assert resolve_device(merged.device).type == "cpu"
    else:
        assert resolve_device(cfg.device).type == "cuda"  # the card it holds (simulated)
