"""Attention maps of a timm Vision Transformer: last-layer CLS attention, rollout, and class-specific maps.

timm's fused ``scaled_dot_product_attention`` never materialises the attention matrix, so the extraction turns
fusion off for the duration of one forward pass and records the softmaxed weights with a forward hook on each
block's ``attn.attn_drop`` (its input *is* the attention matrix, shape (B, heads, tokens, tokens)). Logits of the
unfused path match the fused one to ~1e-6 (tested). timm's ``forward_intermediates`` returns features, not
attention weights, hence the hook.

Class-agnostic maps (``cls``, ``rollout``) give one map per image, so an image with several findings cannot have
its map point at each of them. Class-specific maps (:func:`compute_class_attention_maps`) give one map per class:

* ``grad_rollout``: gradient-weighted attention rollout (Chefer, Gur & Wolf, "Generic Attention-model
  Explainability for Interpreting Bi-Modal and Encoder-Decoder Transformers", ICCV 2021, eq. 5-6; the
  gradient-times-attention weighting also appears in their CVPR 2021 paper):
  ``R <- R + mean_heads(clamp(dlogit_c/dA * A, min=0)) @ R`` from ``R = I`` over the blocks, the CLS row over the
  patch tokens. The attention tensors are recorded *with* their autograd graph (``record_attention(...,
  keep_graph=True)``) and ``torch.autograd.grad`` gives ``dlogit_c/dA`` for every class of the batch.
* ``head``: for a classifier with a token-scoring head (``ViTClassifier(head="csra")``), the head's own per-class
  patch-token scores (a class activation map read from the model, no gradients, no post-hoc attribution),
  sampled at half-token steps by shift-and-stitch (``shifts``).
* ``gradcam``: Grad-CAM on the patch tokens entering the last block (the last block's own patch outputs do not
  reach a CLS-token head, so their gradient is zero): ``relu(sum_k mean_tokens(dlogit_c/dX_k) * X_k)``.

All maps come back as (B, H, W) (or (B, heads, H, W), or (B, classes, H, W) for class maps) at the image resolution, min-max normalised to [0, 1] per
map; a perfectly flat map (no preference anywhere) is returned as all zeros so callers can detect it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "CLASS_METHODS",
    "attention_rollout",
    "class_gradcam",
    "cls_attention_maps",
    "combine_class_maps",
    "compute_attention_maps",
    "compute_class_attention_maps",
    "gradient_rollout",
    "head_class_maps",
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
def record_attention(model: nn.Module, keep_graph: bool = False) -> Iterator[list[torch.Tensor]]:
    """Context manager: inside it, every forward pass appends each block's (B, heads, T, T) attention to a list.

    Fused attention is switched off on entry and restored (with the hooks removed) on exit. With ``keep_graph``
    the recorded tensors are the ones in the autograd graph (not detached), so gradients of the logits with
    respect to them can be taken (gradient-weighted rollout); otherwise they are detached.
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


def _class_forward(
    model: nn.Module, images: torch.Tensor, capture_tokens: bool = False
) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None]:
    """Forward with grad enabled: logits, per-block attention in the graph, (optionally) last block's input."""
    vit = _timm_vit(model)
    x = images.detach().clone().requires_grad_(True)  # a graph exists even when every parameter is frozen
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
    if len(recorded) != len(vit.blocks):
        raise RuntimeError(f"recorded {len(recorded)} attention matrices for {len(vit.blocks)} blocks")
    return logits, list(recorded), (tokens[-1] if tokens else None)


def _check_classes(classes: Sequence[int] | None, n: int) -> list[int]:
    if classes is None:
        return list(range(n))
    out = [int(c) for c in classes]
    bad = [c for c in out if not 0 <= c < n]
    if bad:
        raise ValueError(
            f"class attention maps: class indices {bad} out of range for {n} logits (0..{n - 1})"
        )
    return out


@torch.enable_grad()  # gradients are needed even when the caller is inside torch.no_grad()
def gradient_rollout(
    model: nn.Module,
    images: torch.Tensor,
    classes: Sequence[int] | None = None,
    start_layer: int = 0,
    head_fusion: str = "mean",
    weighting: str = "positive",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-specific gradient-weighted attention rollout (Chefer, Gur & Wolf, ICCV 2021).

    For each class ``c``: ``R = I``; for every block ``l >= start_layer``:
    ``R <- R + fuse_heads(clamp(dlogit_c/dA_l * A_l, min=0)) @ R``; the map is the CLS row of ``R`` over the
    patch tokens, upsampled and normalised to [0, 1].

    Args:
        classes: logit indices to explain (default: all), in the order of the returned channels.
        start_layer: first block included (later blocks only give a map closer to the decision).
        head_fusion: ``mean`` (the paper) or ``max`` over heads.
        weighting: ``positive`` (the paper: ``clamp(grad * A, min=0)``) or ``abs`` (``|grad * A|``: keeps
            attention whose gradient is negative, which in a saturated model can be the one that decides).

    Returns:
        ``(logits (B, C), maps (B, len(classes), H, W))``.
    """
    if head_fusion not in ("mean", "max"):
        raise ValueError(f"gradient_rollout: head_fusion must be 'mean' or 'max', got {head_fusion!r}")
    if weighting not in ("positive", "abs"):
        raise ValueError(f"gradient_rollout: weighting must be 'positive' or 'abs', got {weighting!r}")
    vit = _timm_vit(model)
    depth = len(vit.blocks)
    if not -depth <= start_layer < depth:
        raise ValueError(f"gradient_rollout: start_layer={start_layer} out of range for {depth} blocks")
    start_layer %= depth
    if getattr(model, "head", None) == "csra":  # a ViTClassifier's head name (a timm ViT's .head is a module)
        raise ValueError(
            f"gradient_rollout explains a CLS-token head (it reads the CLS row of the relevance matrix); this "
            f"classifier has head={model.head!r}, whose logits never read the CLS token, so every map would be "
            "flat. Use the 'head' maps (the head's own token scores) or 'gradcam'"
        )
    logits, atts, _ = _class_forward(model, images)
    cls_idx = _check_classes(classes, logits.shape[1])
    p = int(vit.num_prefix_tokens)
    rows = []
    for k, c in enumerate(cls_idx):
        # samples are independent in eval mode, so the gradient of the batch sum is the per-sample gradient
        grads = torch.autograd.grad(logits[:, c].sum(), atts, retain_graph=k < len(cls_idx) - 1)
        b, _, t, _ = atts[0].shape
        r = torch.eye(t, dtype=atts[0].dtype, device=atts[0].device).expand(b, t, t)
        for a, g in list(zip(atts, grads))[start_layer:]:
            cam = g * a.detach()
            cam = cam.clamp(min=0) if weighting == "positive" else cam.abs()
            cam = cam.mean(1) if head_fusion == "mean" else cam.amax(1)
            r = r + cam @ r
        rows.append(r[:, 0, p:])
    scores = torch.stack(rows, 1)  # (B, C, patches)
    return logits.detach(), tokens_to_maps(scores, tuple(vit.patch_embed.grid_size), tuple(images.shape[-2:]))


@torch.enable_grad()
def class_gradcam(
    model: nn.Module, images: torch.Tensor, classes: Sequence[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Grad-CAM per class on the patch tokens entering the last block (channel weights = token-mean gradient).

    Returns:
        ``(logits (B, C), maps (B, len(classes), H, W))`` in [0, 1].
    """
    vit = _timm_vit(model)
    logits, _atts, tokens = _class_forward(model, images, capture_tokens=True)
    assert tokens is not None
    cls_idx = _check_classes(classes, logits.shape[1])
    p = int(vit.num_prefix_tokens)
    feats = tokens[:, p:]  # (B, patches, D)
    rows = []
    for k, c in enumerate(cls_idx):
        (g,) = torch.autograd.grad(logits[:, c].sum(), tokens, retain_graph=k < len(cls_idx) - 1)
        w = g[:, p:].mean(1, keepdim=True)  # (B, 1, D)
        rows.append(torch.relu((w * feats.detach()).sum(-1)))
    scores = torch.stack(rows, 1)
    return logits.detach(), tokens_to_maps(scores, tuple(vit.patch_embed.grid_size), tuple(images.shape[-2:]))


def _shift_content(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Move the image content down/right by (dy, dx) pixels, replicating the top/left edge (size unchanged)."""
    h, w = images.shape[-2:]
    return F.pad(images, (dx, 0, dy, 0), mode="replicate")[..., :h, :w]


@torch.no_grad()
def head_class_maps(
    model: nn.Module,
    images: torch.Tensor,
    classes: Sequence[int] | None = None,
    shifts: int = 2,
    stitch: str = "interleave",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class patch-token scores of a token-scoring head (``ViTClassifier(head="csra")``) as maps.

    ``shifts = s`` > 1 samples the scores ``s`` times finer than the token grid by shift-and-stitch (Long, Shelhamer
    & Darrell, "Fully Convolutional Networks", CVPR 2015): the image content is moved by ``patch * j / s`` pixels
    (``j < s``, both axes, edges replicated), so the tokens of each pass sit between those of the others, and the
    ``s * s`` score grids are interleaved into one grid of ``patch / s``-pixel steps before bilinear upsampling.
    With ``s = 1`` the map is the token grid upsampled (its maximum lies at a token centre). ``stitch="mean"``
    instead upsamples each pass on its own (shifted) token centres and averages the ``s * s`` maps: smoother, with
    no stripes where the passes' score levels differ (interleaving shows them on low-contrast maps), at the cost
    of a blurrier peak.

    Returns:
        ``(logits (B, C), maps (B, len(classes), H, W))`` in [0, 1]; the logits are those of the unshifted image.
    """
    if getattr(model, "head", None) != "csra" or not hasattr(model, "class_token_scores"):
        raise ValueError(
            "attention map method 'head' needs a classifier that scores patch tokens "
            "(ViTClassifier(head='csra')); use rollout, grad_rollout or gradcam for a CLS-token head"
        )
    vit = _timm_vit(model)
    gh, gw = tuple(vit.patch_embed.grid_size)
    h, w = images.shape[-2:]
    patch = h // gh
    if int(shifts) < 1 or patch % int(shifts):
        raise ValueError(
            f"head_class_maps: shifts must divide the {patch}-px patch (1, 2, 4, ...), got {shifts}"
        )
    s = int(shifts)
    scores = model.class_token_scores(images)  # (B, C, N)
    logits = model.pool_token_scores(scores)
    cls_idx = _check_classes(classes, logits.shape[1])
    if s == 1:
        return logits, tokens_to_maps(scores[:, cls_idx], (gh, gw), (h, w))
    if stitch not in ("interleave", "mean"):
        raise ValueError(f"head_class_maps: stitch must be 'interleave' or 'mean', got {stitch!r}")
    step = patch // s
    b, c = images.shape[0], len(cls_idx)
    # one forward pass per content shift (jy, jx) * step; the unshifted one is `scores`
    passes = {
        (jy, jx): (
            scores
            if jy == jx == 0
            else model.class_token_scores(_shift_content(images, jy * step, jx * step))
        )[:, cls_idx].reshape(b, c, gh, gw)
        for jy in range(s)
        for jx in range(s)
    }
    pix_y = torch.arange(h, dtype=scores.dtype, device=scores.device) + 0.5  # pixel centres
    pix_x = torch.arange(w, dtype=scores.dtype, device=scores.device) + 0.5
    if stitch == "mean":
        # token i of pass j is centred at patch * (i + 1/2) - j * step: pixel p sits at fractional token index
        # (p + 0.5 + j * step) / patch - 1/2
        total = sum(
            _sample_grid(sc, (pix_y + jy * step) / patch - 0.5, (pix_x + jx * step) / patch - 0.5)
            for (jy, jx), sc in passes.items()
        )
        return logits, normalize_maps(total / (s * s))
    fine = scores.new_zeros(b, c, gh * s, gw * s)
    for (jy, jx), sc in passes.items():
        # token i of a pass shifted by j*step is centred at step * (s*i + s/2 - j): fine index s*i + s-1-j
        fine[:, :, s - 1 - jy :: s, s - 1 - jx :: s] = sc
    # fine sample k is centred at pixel coordinate step * (k + 1 - s/2)
    uy = pix_y / step - 1 + s / 2
    ux = pix_x / step - 1 + s / 2
    return logits, normalize_maps(_sample_grid(fine, uy, ux))


def _sample_grid(values: torch.Tensor, uy: torch.Tensor, ux: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of (B, C, n, m) ``values`` at fractional row/column indices ``uy`` (H,) and ``ux`` (W,)
    (clamped to the border) -> (B, C, H, W)."""
    b, c, n, m = values.shape
    gy = 2 * uy / max(n - 1, 1) - 1
    gx = 2 * ux / max(m - 1, 1) - 1
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], -1).expand(b * c, len(uy), len(ux), 2)
    out = F.grid_sample(
        values.reshape(b * c, 1, n, m), grid, mode="bilinear", padding_mode="border", align_corners=True
    )
    return out.reshape(b, c, len(uy), len(ux))


CLASS_METHODS: dict[str, Callable[..., tuple[torch.Tensor, torch.Tensor]]] = {
    "grad_rollout": gradient_rollout,
    "gradcam": class_gradcam,
    "head": head_class_maps,
}
_AGNOSTIC_METHODS: dict[str, Callable[..., tuple[torch.Tensor, torch.Tensor]]] = {
    "rollout": attention_rollout,
    "cls": cls_attention_maps,
}


def _batched(
    fn: Callable[..., tuple[torch.Tensor, torch.Tensor]],
    model: nn.Module,
    images: torch.Tensor,
    batch_size: int,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    if batch_size < 1:
        raise ValueError(f"attention maps: batch_size must be >= 1, got {batch_size}")
    was_training = model.training
    model.eval()
    try:
        outs = [
            fn(model, images[i : i + batch_size], **kwargs) for i in range(0, images.shape[0], batch_size)
        ]
    finally:
        model.train(was_training)
    return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])


def compute_class_attention_maps(
    model: nn.Module,
    images: torch.Tensor,
    method: str = "grad_rollout",
    batch_size: int = 32,
    classes: Sequence[int] | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (B, C) and one map per class (B, C, H, W) in [0, 1], in chunks of ``batch_size``.

    ``method``: ``grad_rollout`` (gradient-weighted rollout; ``start_layer``, ``head_fusion``, ``weighting`` pass
    through) or
    ``gradcam``. Channel ``c`` explains logit ``c`` (i.e. ``model.labels[c]``); ``classes`` picks a subset.
    """
    if method not in CLASS_METHODS:
        raise ValueError(
            f"compute_class_attention_maps: method {method!r} unknown; choose one of {sorted(CLASS_METHODS)} "
            f"(class-agnostic {sorted(_AGNOSTIC_METHODS)} are in compute_attention_maps)"
        )
    return _batched(CLASS_METHODS[method], model, images, batch_size, classes=classes, **kwargs)


def combine_class_maps(logits: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) class maps -> (B, H, W): weighted by the sigmoid probabilities (renormalised), then [0, 1]."""
    w = torch.sigmoid(logits.float())
    w = w / w.sum(1, keepdim=True).clamp_min(1e-12)
    return normalize_maps((w[:, :, None, None] * maps).sum(1))


def compute_attention_maps(
    model: nn.Module, images: torch.Tensor, method: str = "rollout", batch_size: int = 32, **kwargs: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and one class-agnostic (B, H, W) map per image, in chunks of ``batch_size``.

    ``method``: ``rollout`` or ``cls`` (attention only), or a class-specific method (``grad_rollout``,
    ``gradcam``), whose per-class maps are combined with weights = sigmoid probabilities (renormalised over the
    classes), so the image's likely findings dominate the map used for region selection.
    """
    if method in CLASS_METHODS:
        logits, maps = compute_class_attention_maps(model, images, method, batch_size, **kwargs)
        return logits, combine_class_maps(logits, maps)
    if method not in _AGNOSTIC_METHODS:
        raise ValueError(
            f"compute_attention_maps: method {method!r} unknown; choose one of "
            f"{sorted(_AGNOSTIC_METHODS) + sorted(CLASS_METHODS)}"
        )
    return _batched(_AGNOSTIC_METHODS[method], model, images, batch_size, **kwargs)
