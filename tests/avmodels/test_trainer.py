"""Trainer: typed config, learning a planted signal, reproducibility, exact resume, the epoch
loop and its hook, step decay, paired fusions, model files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from avspot.avmodels.config import ModelConfig
from avspot.avmodels.data import ChunkBatches
from avspot.avmodels.fusion_methods import FUSIONS
from avspot.avmodels.model_io import load_model, save_model
from avspot.avmodels.train_config import TrainConfig
from avspot.avmodels.trainer import Trainer, TrainResult, train
from avspot.datasets.errors import DataError
from avspot.datasets.halves import Event, Half

D = 16
RAW = {"card": "y-card", "subs": "substitution-in", "soccer": "soccer-ball"}
# planted signal: cards in video only, goals in audio only, substitutions in both
SIGNAL = {"card": ("video", 0), "subs": ("both", 1), "soccer": ("audio", 2)}


def _half(seed: int, split: str, n: int = 320, game: str | None = None, half: int = 1) -> Half:
    rng = np.random.default_rng(seed)
    video = rng.normal(size=(n, D)).astype(np.float32)
    audio = rng.normal(size=(n, D)).astype(np.float32)
    frames = rng.choice(np.arange(12, n - 12, 16), size=9, replace=False)
    events = []
    for i, f in enumerate(sorted(frames)):
        label = ("card", "subs", "soccer")[i % 3]
        where, dim = SIGNAL[label]
        for name, x in (("video", video), ("audio", audio)):
            if where in (name, "both"):
                x[f - 2 : f + 3, dim] += 4.0
        events.append(Event(int(f), label, RAW[label], int(f) * 500))
    return Half(game or f"{split}{seed}", half, split, 2.0, video, audio, events)


TRAIN = [_half(s, "train") for s in range(8)]
VALID = [_half(100 + s, "valid") for s in range(3)]


def _cfg(**kw) -> TrainConfig:
    model = {
        "fusion": "before_fc",
        "pooling": "netvlad",
        "clusters": 4,
        "window_s": 4.0,
        "video_dim": D,
        "audio_dim": D,
        "pool_out": 16,
        "dropout": 0.2,
    }
    model.update(kw.pop("model", {}))
    base = {"lr": 3e-2, "batch_size": 32, "max_epochs": 4, "num_threads": 1, "spot_method": "nms"}
    base.update(kw)
    return TrainConfig(model=ModelConfig(**model), **base)


def _fit(cfg: TrainConfig, on_epoch=None) -> tuple[Trainer, TrainResult]:
    stream = ChunkBatches(TRAIN, cfg.model.window_frames, cfg.batch_size, seed=cfg.seed)
    trainer = Trainer(cfg)
    return trainer, trainer.fit(stream, lambda: VALID, on_epoch, pos_freq=stream.pos_freq)


# ---- config -----------------------------------------------------------------------------------


def test_merge_takes_typed_trainer_and_model_fields() -> None:
    cfg = TrainConfig().merge(
        {
            "fusion": "before_fc",
            "pooling": "netvlad",
            "clusters": 64,
            "window_s": 20,
            "lr": 0.001,
            "schedule": "cosine",
            "model.dropout": 0.5,
            "max_epochs": 3,
            "val_spotting": False,
        }
    )
    assert cfg.model.fusion == "before_fc" and cfg.model.pooling == "netvlad"
    assert cfg.model.clusters == 64 and cfg.model.window_s == 20.0 and cfg.model.dropout == 0.5
    assert isinstance(cfg.model.window_s, float) and cfg.model.window_frames == 40
    assert cfg.lr == 0.001 and cfg.schedule == "cosine" and cfg.max_epochs == 3
    assert cfg.val_spotting is False


@pytest.mark.parametrize(
    ("values", "message", "field"),
    [
        ({"lrate": 0.1}, r"lrate: unknown key; valid keys: .*batch_size.*fusion", "lrate"),
        ({"model.lr": 0.1}, r"model.lr: unknown key", "model.lr"),
        ({"schedule": "linear"}, r"schedule='linear': unknown; valid: step, cosine, plateau", None),
        ({"monitor": "loss"}, r"valid: val_average_map, val_map", "monitor"),
        ({"lr": "0.1"}, r"lr='0.1': expected float, not a string", "lr"),
        ({"fusion": "middle"}, r"middle.*valid: .*before_fc", "fusion"),
        ({"pooling": "median"}, r"median.*valid: .*netvlad", "pooling"),
        ({"max_epochs": 0}, r"max_epochs=0: must be > 0", "max_epochs"),
    ],
)
def test_merge_rejects_unknown_keys_and_bad_values_naming_the_field(values, message, field) -> None:
    with pytest.raises(DataError, match=message) as err:
        TrainConfig().merge(values)
    assert err.value.field == (field or next(iter(values)))


def test_config_round_trips_through_json() -> None:
    cfg = _cfg(schedule="plateau", class_weight="balanced")
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    with pytest.raises(DataError, match="unknown keys"):
        TrainConfig.from_dict({**cfg.to_dict(), "momentum": 0.9})


# ---- training ---------------------------------------------------------------------------------


def test_learns_the_planted_signal_and_reports_every_metric() -> None:
    epochs = []
    _, result = _fit(_cfg(max_epochs=5), epochs.append)
    assert [e.epoch for e in epochs] == [1, 2, 3, 4, 5]
    assert [e.last for e in epochs] == [False] * 4 + [True]
    assert epochs[-1].best_epoch == result.best_epoch
    m = epochs[0].metrics
    for key in (
        "train_loss", "val_loss", "val_map", "val_average_map", "val_average_map_tight", "lr",
        "val_ap_card", "val_ap_subs", "val_ap_soccer", "val_average_map_card", "epoch_time_s",
        "train_samples_per_s",
    ):  # fmt: skip
        assert key in m and math.isfinite(m[key]), key
    chance = np.mean([c.targets[:, :3].mean() for c in [ChunkBatches(VALID, 8, 32)]])
    assert result.best_metrics["val_map"] > max(0.8, 3 * chance)
    assert result.best_metrics["val_average_map"] > 0.8
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.best_epoch == int(max(result.history, key=lambda h: h["val_map"])["epoch"])
    assert result.stop_reason == "max_epochs" and not result.model.training
    text = result.summary()
    assert "val_average_map" in text and "soccer" in text and "best epoch" in text
    json.dumps(result.to_dict())


def test_same_seed_same_run_other_seed_other_run() -> None:
    _, a = _fit(_cfg(max_epochs=2))
    _, b = _fit(_cfg(max_epochs=2))
    _, c = _fit(_cfg(max_epochs=2, seed=1))
    strip = [
        {k: v for k, v in h.items() if "time" not in k and "per_s" not in k} for h in a.history
    ]
    assert strip == [
        {k: v for k, v in h.items() if "time" not in k and "per_s" not in k} for h in b.history
    ]
    assert a.history[-1]["train_loss"] != c.history[-1]["train_loss"]


@pytest.mark.parametrize("schedule", ["step", "cosine", "plateau"])
def test_resume_from_checkpoint_continues_exactly(tmp_path, schedule) -> None:
    cfg = _cfg(max_epochs=4, schedule=schedule, patience=1, stop_patience=9, max_decays=5)

    def deterministic(history):
        return [
            {k: v for k, v in h.items() if "time" not in k and "per_s" not in k} for h in history
        ]

    straight, r_straight = _fit(cfg)

    first = Trainer(cfg)
    stream = ChunkBatches(TRAIN, cfg.model.window_frames, cfg.batch_size, seed=cfg.seed)
    for end in first.epochs(stream, lambda: VALID, pos_freq=stream.pos_freq):
        if end.epoch == 2:  # the caller checkpoints between epochs and leaves the loop
            first.save_checkpoint(tmp_path / "ckpt.pt")
            break
    r_first = first.result("stopped")
    assert r_first.stop_reason == "stopped" and len(r_first.history) == 2
    resumed = Trainer.from_checkpoint(tmp_path / "ckpt.pt")
    stream = ChunkBatches(TRAIN, cfg.model.window_frames, cfg.batch_size, seed=cfg.seed)
    r_resumed = resumed.fit(stream, lambda: VALID)
    assert deterministic(r_resumed.history) == deterministic(r_straight.history)
    for (k, a), (_, b) in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), k
    assert resumed.lr == straight.lr


class Scripted(Trainer):
    """A trainer whose validation metric follows a script (the schedule logic under test)."""

    def __init__(self, cfg: TrainConfig, values: list[float]) -> None:
        super().__init__(cfg)
        self.values = list(values)

    def evaluate(self, halves):
        list(halves)
        v = self.values.pop(0)
        return {"val_loss": 1 - v, "val_map": v}, {}


def _fit_scripted(
    cfg: TrainConfig, values: list[float], on_epoch=None
) -> tuple[Trainer, TrainResult]:
    stream = ChunkBatches(TRAIN[:2], cfg.model.window_frames, cfg.batch_size, seed=cfg.seed)
    trainer = Scripted(cfg, values)
    return trainer, trainer.fit(stream, lambda: VALID, on_epoch)


def test_step_decay_restores_best_weights_and_stops_after_max_decays() -> None:
    snapshots = {}
    cfg = _cfg(max_epochs=30, patience=2, max_decays=2, stop_patience=20, lr=1e-2)
    values = [0.5, 0.6, 0.55, 0.58, 0.7, 0.6, 0.6, 0.6, 0.6, 0.6]
    trainer = Scripted(cfg, values)

    def snap(end):
        snapshots[end.epoch] = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    stream = ChunkBatches(TRAIN[:2], cfg.model.window_frames, cfg.batch_size, seed=cfg.seed)
    result = trainer.fit(stream, lambda: VALID, snap)
    lrs = [h["lr"] for h in result.history]
    # best 0.6 at 2; decay after 3, 4 (restore epoch 2); best 0.7 at 5; decay after 6, 7
    # (restore epoch 5); 8, 9 without improvement and no decay left: stop
    assert lrs == pytest.approx([1e-2] * 4 + [1e-3] * 3 + [1e-4] * 2)
    assert result.stop_reason == "early_stop" and len(result.history) == 9
    assert result.best_epoch == 5 and trainer.state.decays == 2
    for k, v in snapshots[4].items():
        assert torch.equal(v, snapshots[2][k]), k  # epoch 4 ended by restoring epoch 2
    for k, v in result.model.state_dict().items():
        assert torch.equal(v, snapshots[5][k]), k  # the result holds the best epoch


def test_stop_patience_and_a_hook_that_stops() -> None:
    cfg = _cfg(max_epochs=30, schedule="cosine", stop_patience=2)
    _, result = _fit_scripted(cfg, [0.5, 0.4, 0.45, 0.9])
    assert result.stop_reason == "early_stop" and len(result.history) == 3
    _, result = _fit_scripted(_cfg(max_epochs=3, schedule="plateau", patience=1), [0.5, 0.4, 0.3])
    assert [h["lr"] for h in result.history] == pytest.approx([3e-2, 3e-2, 3e-3])

    calls = []

    def stop_after_one(end):
        calls.append(end.epoch)
        return "stop"

    trainer, result = _fit(_cfg(max_epochs=5), stop_after_one)
    assert calls == [1] and result.stop_reason == "stopped" and result.model is not None
    assert not trainer.done and trainer.state.epoch == 1
    _, last = _fit(_cfg(max_epochs=1), stop_after_one)  # "stop" on the last epoch: no-op
    assert last.stop_reason == "max_epochs"


def test_keyboard_interrupt_returns_the_best_so_far() -> None:
    cfg = _cfg(max_epochs=5)
    stream = ChunkBatches(TRAIN, cfg.model.window_frames, cfg.batch_size)

    def batches(epoch):
        if epoch == 3:
            raise KeyboardInterrupt
        yield from stream(epoch)

    result = Trainer(cfg).fit(batches, lambda: VALID)
    assert result.stop_reason == "interrupted" and len(result.history) == 2


def test_balanced_class_weight_from_given_or_estimated_frequencies(tmp_path) -> None:
    cfg = _cfg(class_weight="balanced", max_epochs=1)
    stream = ChunkBatches(TRAIN, cfg.model.window_frames, cfg.batch_size)
    p = stream.pos_freq
    given = Trainer(cfg)
    given.fit(stream, lambda: VALID, pos_freq=p)
    np.testing.assert_allclose(given.pos_weight.numpy(), (1 - p) / p, rtol=1e-6)
    estimated = Trainer(cfg)  # the Ray path passes no frequencies: epoch 1 estimates them
    estimated.fit(stream, lambda: VALID)
    np.testing.assert_allclose(estimated.pos_freq, p, rtol=1e-6)
    estimated.save_checkpoint(tmp_path / "c.pt")
    resumed = Trainer.from_checkpoint(tmp_path / "c.pt")
    torch.testing.assert_close(resumed.pos_weight, estimated.pos_weight)
    with pytest.raises(DataError, match="4 entries"):
        Trainer(cfg).fit(stream, lambda: VALID, pos_freq=[0.5, 0.5])


def test_monitor_val_average_map_and_read_only_batches() -> None:
    cfg = _cfg(monitor="val_average_map", max_epochs=2)
    stream = ChunkBatches(TRAIN, cfg.model.window_frames, cfg.batch_size)

    def read_only(epoch):  # Ray Data hands out read-only arrays
        for b in stream(epoch):
            for v in b.values():
                v.setflags(write=False)
            yield b

    result = Trainer(cfg).fit(read_only, lambda: VALID)
    best = max(result.history, key=lambda h: h["val_average_map"])
    assert result.best_epoch == int(best["epoch"])


@pytest.mark.parametrize("fusion", [m for m, f in FUSIONS.items() if f.requires_pretrained])
def test_paired_fusion_trains_two_models_and_combines_them(fusion, tmp_path) -> None:
    cfg = _cfg(model={"fusion": fusion}, max_epochs=4)
    trainer, result = _fit(cfg)
    assert hasattr(trainer.model, "video_model") and hasattr(trainer.model, "audio_model")
    assert result.best_metrics["val_map"] > 0.7
    assert result.model.config.fusion == fusion
    path = save_model(result.model, cfg.model, tmp_path / "pair.pt")
    loaded, mcfg = load_model(path)
    assert mcfg == cfg.model
    v = torch.randn(3, 8, D)
    a = torch.randn(3, 8, D)
    with torch.no_grad():
        torch.testing.assert_close(loaded(v, a), result.model.eval()(v, a))


def test_save_and_load_model_round_trip(tmp_path) -> None:
    cfg = _cfg(max_epochs=1)
    _, result = _fit(cfg)
    path = save_model(result.model, cfg.model, tmp_path / "m" / "model.pt")
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == "avspot-model" and payload["config"] == cfg.model.to_dict()
    model, mcfg = load_model(path)
    assert mcfg == cfg.model and not model.training
    v, a = torch.randn(2, 8, D), torch.randn(2, 8, D)
    with torch.no_grad():
        torch.testing.assert_close(model(v, a), result.model(v, a))
    with pytest.raises(DataError, match="does not exist"):
        load_model(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_text("not a model")
    with pytest.raises(DataError, match="junk.pt"):
        load_model(tmp_path / "junk.pt")


def test_train_convenience_function() -> None:
    result = train(_cfg(max_epochs=1), TRAIN[:3], VALID[:1])
    assert len(result.history) == 1


@pytest.mark.parametrize("schedule", ["step", "cosine"])
def test_checkpoints_hold_best_copies_only_when_they_differ(schedule, tmp_path) -> None:
    cfg = _cfg(max_epochs=3, schedule=schedule, patience=5, stop_patience=9)
    trainer = Scripted(cfg, [0.5, 0.6, 0.55])
    stream = ChunkBatches(TRAIN[:2], cfg.model.window_frames, cfg.batch_size, seed=cfg.seed)
    kept = {}
    for end in trainer.epochs(stream, lambda: VALID):
        kept[end.epoch] = trainer.checkpoint()
        trainer.save_checkpoint(tmp_path / f"e{end.epoch}.pt")
    assert kept[2]["best_model"] is None and kept[2]["best_optimizer"] is None  # 2 is the best
    assert kept[3]["best_model"] is not None  # epoch 3 is worse: epoch 2's weights kept
    assert (kept[3]["best_optimizer"] is not None) == (schedule == "step")  # step restores it
    resumed = Trainer.from_checkpoint(tmp_path / "e2.pt")  # the best weights are the model's
    for k, v in resumed.best_model_state.items():
        assert torch.equal(v, kept[2]["model"][k]), k
    resumed = Trainer.from_checkpoint(tmp_path / "e3.pt")
    for k, v in resumed.best_model_state.items():
        assert torch.equal(v, kept[3]["best_model"][k]), k
