"""Class-agnostic maps read from the attention alone: last-layer CLS attention and attention rollout."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence

import torch
from torch import nn

from medgen.inferers.attention.base import AttentionMapBase, check_choice, fuse_heads
from medgen.inferers.attention.hooks import forward_with_attention

__all__ = ["ClsAttention", "Rollout"]


class AttentionOnlyMap(AttentionMapBase):
    """A class-agnostic map computed from the recorded attention of one forward pass without gradients."""

    def compute(
        self, images: torch.Tensor, classes: Sequence[int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.select_classes(classes, 0)
        logits, atts = forward_with_attention(self.model, images)
        return logits, self.token_maps(self.patch_scores(atts), images)

    @abstractmethod
    def patch_scores(self, atts: list[torch.Tensor]) -> torch.Tensor:
        """Each block's (B, heads, T, T) attention -> (B, ..., patches) scores of the patch tokens."""


class ClsAttention(AttentionOnlyMap):
    """Last block's CLS-token attention over the patch tokens, averaged over heads (or one map per head).

    Args:
        model: the classifier.
        per_head: return (B, heads, H, W) instead of the head mean (B, H, W).
    """

    name = "cls"

    def __init__(self, model: nn.Module, per_head: bool = False) -> None:
        super().__init__(model)
        self.per_head = per_head

    def patch_scores(self, atts: list[torch.Tensor]) -> torch.Tensor:
        cls = atts[-1][:, :, 0, self.num_prefix_tokens :]  # (B, heads, patches)
        return cls if self.per_head else cls.mean(1)


class Rollout(AttentionOnlyMap):
    """Attention rollout (Abnar & Zuidema 2020): CLS row of the product of head-fused, residual-mixed layers.

    Each layer's attention ``A`` (heads fused by ``mean`` or ``max``) becomes ``w*I + (1-w)*A`` (the residual
    path), rows renormalised, and the layers are multiplied from the first to the last.

    Args:
        model: the classifier.
        head_fusion: ``mean`` or ``max`` over heads.
        residual_weight: ``w``, the weight of the identity (residual path) in every layer.
    """

    name = "rollout"

    def __init__(self, model: nn.Module, head_fusion: str = "mean", residual_weight: float = 0.5) -> None:
        self.head_fusion = check_choice(self.name, "head_fusion", head_fusion, ("mean", "max"))
        super().__init__(model)
        self.residual_weight = residual_weight

    def patch_scores(self, atts: list[torch.Tensor]) -> torch.Tensor:
        w = self.residual_weight
        rollout = None
        for att in atts:
            a = fuse_heads(att, self.head_fusion)
            eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
            a = w * eye + (1 - w) * a
            a = a / a.sum(-1, keepdim=True)
            rollout = a if rollout is None else a @ rollout
        return rollout[:, 0, self.num_prefix_tokens :]
