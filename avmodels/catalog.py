"""What ``avspot models`` prints: registered poolings and fusion methods with parameter counts.

Counts of the seed's configurations (NetVLAD k=512 and NetRVLAD k=64, 20 s
and 60 s windows, every fusion method). Models are built on the meta device: nothing is
allocated, so even the 268M-parameter fused NetVLAD k=512 models are counted instantly.
"""

from __future__ import annotations

import torch

from avspot.avmodels.config import ModelConfig
from avspot.avmodels.fusion import build_model, count_parameters
from avspot.avmodels.fusion_methods import FUSIONS
from avspot.avmodels.pooling import POOLINGS, create_pooling

SEED_CONFIGS = (("netvlad", 512), ("netrvlad", 64))
SEED_WINDOWS = (20.0, 60.0)


def _count(**kw: object) -> int:
    with torch.device("meta"):
        return count_parameters(build_model(ModelConfig(**kw)))  # type: ignore[arg-type]


def pooling_table(clusters: int = 64, dim: int = 512, window_s: float = 20.0) -> list[list[str]]:
    """Rows (pooling, out_dim, parameters) of every registered pooling at the seed sizes."""
    cfg = ModelConfig(clusters=clusters, window_s=window_s)
    rows = []
    for name in sorted(POOLINGS):
        with torch.device("meta"):
            pool = create_pooling(
                name,
                dim,
                cfg.window_frames,
                clusters=clusters,
                pool_out=cfg.pool_out,
                gating=cfg.gating,
                kernel_frames=cfg.cnn_kernel,
            )
        rows.append([name, f"{pool.out_dim:,}", f"{count_parameters(pool):,}"])
    return rows


def fusion_table() -> tuple[list[str], list[list[str]]]:
    """Header and rows: every fusion method x seed configuration, parameter counts."""
    header = ["fusion", "seed", "merge"]
    for pooling, k in SEED_CONFIGS:
        for window in SEED_WINDOWS:
            header.append(f"{pooling} k={k} {window:g}s")
    rows = []
    for name, method in FUSIONS.items():
        row = [name, str(method.seed_method or "-"), method.merge or "-"]
        for pooling, k in SEED_CONFIGS:
            for window in SEED_WINDOWS:
                row.append(f"{_count(fusion=name, pooling=pooling, clusters=k, window_s=window):,}")
        rows.append(row)
    return header, rows


def _format(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        cells = [
            c.ljust(w) if i < 3 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def catalog() -> str:
    """The whole listing: poolings, fusion methods, parameters of the seed's configurations."""
    lines = ["Poolings (512-d input, k=64, pool_out=512, context gating; 20 s windows):"]
    lines.append(_format(["pooling", "out_dim", "parameters"], pooling_table()))
    lines += ["", "Fusion methods (512-d video and audio, pool_out=512, gating, 4 outputs):"]
    for name, method in FUSIONS.items():
        lines.append(f"  {name:<15} {method.description}")
    header, rows = fusion_table()
    lines += ["", "Parameters of the seed's configurations:", _format(header, rows)]
    return "\n".join(lines)
