"""The pipeline's figure: the first test images with their region-selecting attention map, the chosen regions
and the finding masks (``figures/attention_overlay.png``), and the arrays it was drawn from
(``figure_arrays.npz``, redrawn by ``python -m medgen.visualize.attention``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["save_pipeline_figures"]


def save_pipeline_figures(
    out_dir: Path,
    images: torch.Tensor,
    maps: torch.Tensor,
    boxes: Sequence[torch.Tensor],
    show: Sequence[int],
    data: dict[str, Any],
    k: int,
) -> Path:
    """Draw the figure for the images ``show`` (indices into ``data``; ``images``, ``maps`` and ``boxes`` are
    theirs, in that order) and save its arrays; ``k``: most regions per image. Returns the PNG path."""
    from medgen.visualize.attention import save_attention_overlay

    size = images.shape[-1]
    union = [
        np.any(
            [np.asarray(m, bool) for m in data["truth_masks"](i).values()] or [np.zeros((size, size), bool)],
            0,
        )
        for i in show
    ]
    names = data["label_names"]
    path = save_attention_overlay(
        images,
        maps,
        out_dir / "figures" / "attention_overlay.png",
        boxes=list(boxes),
        masks=union if data["truth"] != "none" else None,
        titles=[
            ", ".join(n for n, y in zip(names, data["labels"][i]) if y)[:28] or "no finding" for i in show
        ],
    )
    np.savez_compressed(
        out_dir / "figure_arrays.npz",
        images=images.numpy(),
        maps=maps.numpy(),
        masks=np.stack(union),
        boxes=np.stack([np.pad(b.numpy(), ((0, k - len(b)), (0, 0))) for b in boxes])
        if len(boxes)
        else np.zeros((len(show), 1, 4)),
    )
    return Path(path)
