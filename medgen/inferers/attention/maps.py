"""Tensor post-processing shared by every attention-map method: token scores -> image-sized [0, 1] maps."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["combine_class_maps", "normalize_maps", "tokens_to_maps"]


def normalize_maps(maps: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Min-max normalise each map over its last two dimensions to [0, 1]; a flat map becomes all zeros."""
    flat = maps.flatten(-2)
    lo = flat.min(-1, keepdim=True).values
    hi = flat.max(-1, keepdim=True).values
    span = hi - lo
    out = torch.where(span > eps, (flat - lo) / span.clamp_min(eps), torch.zeros_like(flat))
    return out.view_as(maps)


def tokens_to_maps(
    token_scores: torch.Tensor, grid: tuple[int, int], out_size: tuple[int, int]
) -> torch.Tensor:
    """(..., grid_h*grid_w) patch-token scores -> (..., H, W) bilinear-upsampled maps normalised to [0, 1]."""
    lead = token_scores.shape[:-1]
    maps = token_scores.reshape(-1, 1, *grid).float()
    maps = F.interpolate(maps, size=out_size, mode="bilinear", align_corners=False)
    return normalize_maps(maps.reshape(*lead, *out_size))


def combine_class_maps(logits: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) class maps -> (B, H, W): weighted by the sigmoid probabilities (renormalised), then [0, 1]."""
    w = torch.sigmoid(logits.float())
    w = w / w.sum(1, keepdim=True).clamp_min(1e-12)
    return normalize_maps((w[:, :, None, None] * maps).sum(1))
