"""ModelConfig: defaults, validation and JSON round trips."""

from __future__ import annotations

import json
import re

import pytest

from avspot.avmodels.config import ModelConfig
from avspot.avmodels.fusion_methods import FUSIONS
from avspot.avmodels.pooling import POOLINGS
from avspot.datasets.labels import NUM_OUTPUTS, OUTPUTS


def test_seed_defaults() -> None:
    cfg = ModelConfig()
    assert cfg.window_s == 20.0 and cfg.fps == 2.0 and cfg.window_frames == 40
    assert cfg.dropout == pytest.approx(1 - 0.6)  # the seed's keep probability 0.6
    assert (cfg.video_dim, cfg.audio_dim, cfg.pool_out, cfg.gating) == (512, 512, 512, True)
    assert cfg.modalities == ("video",)
    assert ModelConfig(window_s=60.0).window_frames == 120
    assert ModelConfig(fusion="before_fc").modalities == ("video", "audio")
    assert OUTPUTS == ("card", "subs", "soccer", "background") and NUM_OUTPUTS == 4


@pytest.mark.parametrize("fusion", list(FUSIONS))
@pytest.mark.parametrize("pool_out", [512, None])
def test_round_trip(fusion: str, pool_out: int | None) -> None:
    cfg = ModelConfig(fusion=fusion, pooling="netrvlad", clusters=8, pool_out=pool_out)
    data = json.loads(json.dumps(cfg.to_dict()))
    assert ModelConfig.from_dict(data) == cfg
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    assert hash(ModelConfig.from_dict(data)) == hash(cfg)


def test_from_dict_takes_typed_values_and_refuses_strings() -> None:
    cfg = ModelConfig.from_dict(
        {"clusters": 512, "window_s": 60, "dropout": 0.5, "pool_out": None, "gating": False}
    )
    assert (cfg.clusters, cfg.window_s, cfg.dropout) == (512, 60.0, 0.5)
    assert isinstance(cfg.window_s, float) and cfg.pool_out is None and cfg.gating is False
    with pytest.raises(ValueError, match="clusters='512': expected int, not a string"):
        ModelConfig.from_dict({"clusters": "512"})  # parsing strings is the command line's job


def test_unknown_field_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown model parameter\(s\) \['k'\]") as err:
        ModelConfig.from_dict({"k": 4})
    assert "'clusters'" in str(err.value)
    with pytest.raises(ValueError, match="'k'"):
        ModelConfig().replace(k=4)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"fusion": "mid"}, re.escape(f"fusion: unknown value 'mid'; valid: {sorted(FUSIONS)}")),
        ({"pooling": "gem"}, re.escape(f"pooling: unknown value 'gem'; valid: {sorted(POOLINGS)}")),
        ({"clusters": 0}, "clusters: must be an integer >= 1"),
        ({"clusters": 2.5}, "clusters: must be an integer >= 1"),
        ({"video_dim": True}, "video_dim: must be an integer >= 1"),
        ({"dropout": 1.0}, r"dropout: drop probability must be in \[0, 1\)"),
        ({"dropout": -0.1}, "dropout"),
        ({"window_s": -1.0}, "window_s and fps: must be > 0"),
        ({"window_s": 0.1}, "window_s: window_s \\* fps must round to >= 1 frame"),
        ({"fps": float("nan")}, "fps: must be a finite number"),
        ({"pool_out": 0}, "pool_out: must be an integer >= 1 or None"),
        ({"gating": "maybe"}, "gating='maybe': expected bool"),
        ({"gating": 1}, "gating: must be true or false"),
    ],
)
def test_invalid_values_name_the_parameter(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelConfig.from_dict(changes)


def test_replace_validates_and_keeps_the_rest() -> None:
    cfg = ModelConfig(pooling="netvlad", clusters=512)
    other = cfg.replace(fusion="audio")
    assert other.fusion == "audio" and other.clusters == 512 and cfg.fusion == "video"
    with pytest.raises(ValueError, match="dropout"):
        cfg.replace(dropout=2.0)


def test_frozen() -> None:
    with pytest.raises(AttributeError):
        ModelConfig().clusters = 3  # type: ignore[misc]


def test_every_class_name_makes_a_metric_name_mlflow_takes() -> None:
    """MLflow refuses '>' in metric names: SoccerNet-v2's 'Yellow->red card' gets a key."""
    import re

    from avspot.avmodels import names as N
    from avspot.datasets.labels import LABEL_SETS

    for ls in LABEL_SETS.values():
        keys = [N.val_ap(c) for c in ls.classes]
        assert len(set(keys)) == ls.num_classes
        assert all(re.fullmatch(r"[0-9A-Za-z_\-. :/]+", k) for k in keys), keys
    assert N.val_average_map_of("card") == "val_average_map_card"  # v1's names as before
