"""The metric names the trainer writes, in one place (every layer above reads them from here).

Per epoch (``Trainer.epochs``): training loss and chunk mAP, validation loss, chunk mAP and AP
per class, spotting Average-mAP (loose, tight, per class), the learning rate and throughput.
After training, a search scores the kept epoch in full (every half, 1 s stride) and logs those
values under ``full_<name>``; the registry ranks versions by them.
"""

from __future__ import annotations

import re

EPOCH = "epoch"
TRAIN_LOSS = "train_loss"
TRAIN_MAP = "train_map"  # chunk mAP of the training batches as they were predicted
VAL_LOSS = "val_loss"
VAL_MAP = "val_map"  # chunk classification mAP on the validation split
VAL_AVERAGE_MAP = "val_average_map"  # spotting Average-mAP, loose (5-60 s)
VAL_AVERAGE_MAP_TIGHT = "val_average_map_tight"  # spotting Average-mAP, tight (1-5 s)
LR = "lr"
LR_DECAYED = "lr_decayed"  # 1 on an epoch after which the schedule divided the rate
TRAIN_SAMPLES = "train_samples"
TRAIN_SAMPLES_PER_S = "train_samples_per_s"
TRAIN_TIME_S = "train_time_s"
EPOCH_TIME_S = "epoch_time_s"
BEST_EPOCH = "best_epoch"

# The metrics a run can be monitored (early stopping, ASHA, TPE, the registry) by.
MONITORS: tuple[str, ...] = (VAL_AVERAGE_MAP, VAL_MAP)
DEFAULT_MONITOR = VAL_AVERAGE_MAP  # a search's and the registry's default


def class_key(cls: str) -> str:
    """A class name as it appears in metric names: MLflow takes letters, digits and ``_-. :/``
    only, so SoccerNet-v2's "Yellow->red card" is ``yellow_red_card`` (v1's card, subs, soccer
    stay as they are)."""
    return re.sub(r"[^0-9a-z]+", "_", cls.lower()).strip("_")


def of_class(metric: str, cls: str) -> str:
    """``metric`` of one class (``val_average_map_card``, ``full_val_average_map_tight_goal``)."""
    return f"{metric}_{class_key(cls)}"


def val_ap(cls: str) -> str:
    """Chunk AP of one class on the validation split."""
    return of_class("val_ap", cls)


def val_average_map_of(cls: str) -> str:
    """Loose spotting Average-mAP of one class on the validation split."""
    return of_class(VAL_AVERAGE_MAP, cls)


def best(metric: str) -> str:
    """The running best of ``metric`` over a run's epochs (``best_val_average_map``)."""
    return f"best_{metric}"


def full(metric: str) -> str:
    """``metric`` of the kept epoch scored in full (``full_val_average_map``)."""
    return f"full_{metric}"
