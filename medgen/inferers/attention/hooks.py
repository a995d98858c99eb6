"""Recording the softmaxed attention of a timm Vision Transformer's blocks, with or without the autograd graph.

timm's fused ``scaled_dot_product_attention`` never materialises the attention matrix, so the extraction turns
fusion off for the duration of one forward pass and records the softmaxed weights with a forward hook on each
block's ``attn.attn_drop`` (its input *is* the attention matrix, shape (B, heads, tokens, tokens)). Logits of the
unfused path match the fused one to ~1e-6 (tested). timm's ``forward_intermediates`` returns features, not
attention weights, hence the hook.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["forward_with_attention", "forward_with_graph", "record_attention", "timm_vit"]


def timm_vit(model: nn.Module) -> nn.Module:
    """The timm ``VisionTransformer`` of ``model`` (a medgen ``ViTClassifier`` keeps it as ``.vit``)."""
    vit = getattr(model, "vit", model)
    if not hasattr(vit, "blocks") or not hasattr(vit, "patch_embed"):
        raise TypeError(
            f"attention maps need a timm VisionTransformer (or a medgen ViTClassifier); got {type(model).__name__}"
        )
    return vit


@contextmanager
def record_attention(model: nn.Module, keep_graph: bool = False) -> Iterator[list[torch.Tensor]]:
    """Context manager: inside it, every forward pass appends each block's (B, heads, T, T) attention to a list.

    Fused attention is switched off on entry and restored (with the hooks removed) on exit. With ``keep_graph``
    the recorded tensors are the ones in the autograd graph (not detached), so gradients of the logits with
    respect to them can be taken (gradient-weighted rollout); otherwise they are detached.
    """
    vit = timm_vit(model)
    recorded: list[torch.Tensor] = []
    saved: list[tuple[nn.Module, bool]] = []
    handles = []
    try:
        for blk in vit.blocks:
            attn = blk.attn
            saved.append((attn, bool(getattr(attn, "fused_attn", False))))
            attn.fused_attn = False
            handles.append(
                attn.attn_drop.register_forward_hook(
                    lambda _m, inp, _out: recorded.append(inp[0] if keep_graph else inp[0].detach())
                )
            )
        yield recorded
    finally:
        for h in handles:
            h.remove()
        for attn, fused in saved:
            attn.fused_attn = fused


def _one_per_block(recorded: list[torch.Tensor], vit: nn.Module) -> list[torch.Tensor]:
    if len(recorded) != len(vit.blocks):
        raise RuntimeError(f"recorded {len(recorded)} attention matrices for {len(vit.blocks)} blocks")
    return list(recorded)


@torch.no_grad()
def forward_with_attention(model: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits and each block's detached (B, heads, T, T) attention of one forward pass without gradients."""
    with record_attention(model) as recorded:
        logits = model(images)
    return logits, _one_per_block(recorded, timm_vit(model))


def forward_with_graph(
    model: nn.Module, images: torch.Tensor, capture_tokens: bool = False
) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None]:
    """Forward with grad enabled: logits, per-block attention in the graph, (optionally) last block's input.

    The input is a fresh leaf that requires grad, so a graph exists even when every parameter is frozen; the
    parameters' ``.grad`` are never touched (callers take ``torch.autograd.grad`` of the returned tensors).
    """
    vit = timm_vit(model)
    x = images.detach().clone().requires_grad_(True)
    tokens: list[torch.Tensor] = []
    handle = (
        vit.blocks[-1].register_forward_pre_hook(lambda _m, args: tokens.append(args[0]))
        if capture_tokens
        else None
    )
    try:
        with torch.enable_grad(), record_attention(model, keep_graph=True) as recorded:
            logits = model(x)
    finally:
        if handle is not None:
            handle.remove()
    return logits, _one_per_block(recorded, vit), (tokens[-1] if tokens else None)
