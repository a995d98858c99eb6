"""Multi-label classification losses."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MultiLabelBCELoss", "pos_weight_from_labels"]


def pos_weight_from_labels(labels: torch.Tensor, max_weight: float = 20.0) -> torch.Tensor:
    """Per-class ``negatives / positives`` from a (N, C) 0/1 label matrix, clipped to ``[1, max_weight]``.

    Why: findings are rare (about 5% prevalence on NIH), so an unweighted BCE is minimised by predicting "no
    finding" everywhere. A class with no positive gets ``max_weight`` rather than infinity.
    """
    labels = torch.as_tensor(labels, dtype=torch.float32)
    if labels.ndim != 2:
        raise ValueError(f"pos_weight_from_labels: labels must be (N, C), got shape {tuple(labels.shape)}")
    pos = labels.sum(0)
    neg = labels.shape[0] - pos
    weight = torch.where(pos > 0, neg / pos.clamp_min(1), torch.full_like(pos, max_weight))
    return weight.clamp(1.0, max_weight)


class MultiLabelBCELoss(nn.BCEWithLogitsLoss):
    """BCE-with-logits over (B, C) logits and 0/1 targets, with an optional per-class ``pos_weight``.

    A thin subclass of :class:`torch.nn.BCEWithLogitsLoss` that accepts a list for ``pos_weight`` (so it can be
    written in a bundle YAML) and checks the target shape instead of broadcasting a wrong one.
    """

    def __init__(self, pos_weight: torch.Tensor | list[float] | None = None, reduction: str = "mean") -> None:
        pw = None if pos_weight is None else torch.as_tensor(pos_weight, dtype=torch.float32)
        super().__init__(pos_weight=pw, reduction=reduction)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # noqa: A002
        if input.shape != target.shape:
            raise ValueError(
                f"MultiLabelBCELoss: logits {tuple(input.shape)} and targets {tuple(target.shape)} differ; "
                f"targets must be (B, num_labels) 0/1"
            )
        return super().forward(input, target.to(input.dtype))
