"""Attention maps of a timm Vision Transformer: last-layer CLS attention (per head / averaged) and rollout.

timm's fused ``scaled_dot_product_attention`` never materialises the attention matrix, so the extraction turns
fusion off for the duration of one forward pass and records the softmaxed weights with a forward hook on each
block's ``attn.attn_drop`` (its input *is* the attention matrix, shape (B, heads, tokens, tokens)). Logits of the
unfused path match the fused one to ~1e-6 (tested). timm's ``forward_intermediates`` returns features, not
attention weights, hence the hook.

All maps come back as (B, H, W) (or (B, heads, H, W)) at the image resolution, min-max normalised to [0, 1] per
map; a perfectly flat map (no preference anywhere) is returned as all zeros so callers can detect it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "attention_rollout",
    "cls_attention_maps",
    "compute_attention_maps",
    "normalize_maps",
    "record_attention",
    "tokens_to_maps",
]


def _timm_vit(model: nn.Module) -> nn.Module:
    vit = getattr(model, "vit", model)
    if not hasattr(vit, "blocks") or not hasattr(vit, "patch_embed"):
        raise TypeError(
            f"attention maps need a timm VisionTransformer (or a medgen ViTClassifier); got {type(model).__name__}"
        )
    return vit


@contextmanager
def record_attention(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Context manager: inside it, every forward pass appends each block's (B, heads, T, T) attention to a list.

    Fused attention is switched off on entry and restored (with the hooks removed) on exit.
    """
    vit = _timm_vit(model)
    recorded: list[torch.Tensor] = []
    saved: list[tuple[nn.Module, bool]] = []
    handles = []
    try:
        for blk in vit.blocks:
            attn = blk.attn
            saved.append((attn, bool(getattr(attn, "fused_attn", False))))
            attn.fused_attn = False
            handles.append(
                attn.attn_drop.register_forward_hook(lambda _m, inp, _out: recorded.append(inp[0].detach()))
            )
        yield recorded
    finally:
        for h in handles:
            h.remove()
        for attn, fused in saved:
            attn.fused_attn = fused


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


@torch.no_grad()
def _forward_with_attention(
    model: nn.Module, images: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    with record_attention(model) as recorded:
        logits = model(images)
    vit = _timm_vit(model)
    if len(recorded) != len(vit.blocks):
        raise RuntimeError(f"recorded {len(recorded)} attention matrices for {len(vit.blocks)} blocks")
    return logits, list(recorded)


def cls_attention_maps(
    model: nn.Module, images: torch.Tensor, per_head: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Last block's CLS-token attention over the patch tokens.

    Returns:
        ``(logits, maps)``; maps are (B, H, W) averaged over heads, or (B, heads, H, W) with ``per_head``.
    """
    vit = _timm_vit(model)
    logits, atts = _forward_with_attention(model, images)
    p = int(vit.num_prefix_tokens)
    cls = atts[-1][:, :, 0, p:]  # (B, heads, patches)
    if not per_head:
        cls = cls.mean(1)
    return logits, tokens_to_maps(cls, tuple(vit.patch_embed.grid_size), tuple(images.shape[-2:]))


def attention_rollout(
    model: nn.Module, images: torch.Tensor, head_fusion: str = "mean", residual_weight: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention rollout (Abnar & Zuidema 2020): CLS row of the product of head-fused, residual-mixed layers.

    Each layer's attention ``A`` (heads fused by ``mean`` or ``max``) becomes ``w*I + (1-w)*A`` (the residual path),
    rows renormalised, and the layers are multiplied from the first to the last.

    Returns:
        ``(logits, maps)`` with maps (B, H, W) in [0, 1].
    """
    if head_fusion not in ("mean", "max"):
        raise ValueError(f"attention_rollout: head_fusion must be 'mean' or 'max', got {head_fusion!r}")
    vit = _timm_vit(model)
    logits, atts = _forward_with_attention(model, images)
    rollout = None
    for att in atts:
        a = att.mean(1) if head_fusion == "mean" else att.amax(1)
        eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
        a = residual_weight * eye + (1 - residual_weight) * a
        a = a / a.sum(-1, keepdim=True)
        rollout = a if rollout is None else a @ rollout
    p = int(vit.num_prefix_tokens)
    cls = rollout[:, 0, p:]
    return logits, tokens_to_maps(cls, tuple(vit.patch_embed.grid_size), tuple(images.shape[-2:]))


def compute_attention_maps(
    model: nn.Module, images: torch.Tensor, method: str = "rollout", batch_size: int = 32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and (B, H, W) maps for a batch, in chunks of ``batch_size``; ``method`` is ``rollout`` or ``cls``."""
    fns = {"rollout": attention_rollout, "cls": cls_attention_maps}
    if method not in fns:
        raise ValueError(f"compute_attention_maps: method {method!r} unknown; choose one of {sorted(fns)}")
    was_training = model.training
    model.eval()
    try:
        outs = [fns[method](model, images[i : i + batch_size]) for i in range(0, images.shape[0], batch_size)]
    finally:
        model.train(was_training)
    return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])
