"""The functional front door: one function per method and the name-dispatching ``compute_*`` batch functions.

Each is a thin wrapper over a class of :mod:`medgen.inferers.attention`; the per-method functions run one
forward pass with the model in whatever mode it is in, the ``compute_*`` functions switch to eval mode and work
in chunks of ``batch_size``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from medgen.inferers.attention.gradient import GradCAMAttention, GradRollout
from medgen.inferers.attention.head import HeadClassMaps
from medgen.inferers.attention.maps import combine_class_maps
from medgen.inferers.attention.registry import look_up_attention_map
from medgen.inferers.attention.rollout import ClsAttention, Rollout

__all__ = [
    "CLASS_METHODS",
    "attention_rollout",
    "class_gradcam",
    "cls_attention_maps",
    "compute_attention_maps",
    "compute_class_attention_maps",
    "gradient_rollout",
    "head_class_maps",
]


def cls_attention_maps(
    model: nn.Module, images: torch.Tensor, per_head: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Last block's CLS-token attention over the patch tokens (:class:`ClsAttention`).

    Returns:
        ``(logits, maps)``; maps are (B, H, W) averaged over heads, or (B, heads, H, W) with ``per_head``.
    """
    return ClsAttention(model, per_head=per_head).compute(images)


def attention_rollout(
    model: nn.Module, images: torch.Tensor, head_fusion: str = "mean", residual_weight: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention rollout (Abnar & Zuidema 2020; :class:`Rollout`).

    Returns:
        ``(logits, maps)`` with maps (B, H, W) in [0, 1].
    """
    return Rollout(model, head_fusion=head_fusion, residual_weight=residual_weight).compute(images)


def gradient_rollout(
    model: nn.Module,
    images: torch.Tensor,
    classes: Sequence[int] | None = None,
    start_layer: int = 0,
    head_fusion: str = "mean",
    weighting: str = "positive",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-specific gradient-weighted attention rollout (Chefer, Gur & Wolf, ICCV 2021; :class:`GradRollout`).

    Returns:
        ``(logits (B, C), maps (B, len(classes), H, W))``.
    """
    maps = GradRollout(model, start_layer=start_layer, head_fusion=head_fusion, weighting=weighting)
    return maps.compute(images, classes)


def class_gradcam(
    model: nn.Module, images: torch.Tensor, classes: Sequence[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Grad-CAM per class on the patch tokens entering the last block (:class:`GradCAMAttention`).

    Returns:
        ``(logits (B, C), maps (B, len(classes), H, W))`` in [0, 1].
    """
    return GradCAMAttention(model).compute(images, classes)


def head_class_maps(
    model: nn.Module,
    images: torch.Tensor,
    classes: Sequence[int] | None = None,
    shifts: int = 2,
    stitch: str = "interleave",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class patch-token scores of a token-scoring head, shift-and-stitched (:class:`HeadClassMaps`).

    Returns:
        ``(logits (B, C), maps (B, len(classes), H, W))`` in [0, 1]; the logits are those of the unshifted image.
    """
    return HeadClassMaps(model, shifts=shifts, stitch=stitch).compute(images, classes)


#: the class-specific methods' functional forms, by method name
CLASS_METHODS: dict[str, Callable[..., tuple[torch.Tensor, torch.Tensor]]] = {
    GradRollout.name: gradient_rollout,
    GradCAMAttention.name: class_gradcam,
    HeadClassMaps.name: head_class_maps,
}


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
    through), ``gradcam`` or ``head`` (``shifts``, ``stitch``). Channel ``c`` explains logit ``c`` (i.e.
    ``model.labels[c]``); ``classes`` picks a subset.
    """
    cls = look_up_attention_map(method, class_specific=True, caller="compute_class_attention_maps")
    return cls(model, **kwargs)(images, classes=classes, batch_size=batch_size)


def compute_attention_maps(
    model: nn.Module, images: torch.Tensor, method: str = "rollout", batch_size: int = 32, **kwargs: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and one class-agnostic (B, H, W) map per image, in chunks of ``batch_size``.

    ``method``: ``rollout`` or ``cls`` (attention only), or a class-specific method (``grad_rollout``,
    ``gradcam``, ``head``), whose per-class maps are combined with weights = sigmoid probabilities (renormalised
    over the classes), so the image's likely findings dominate the map used for region selection.
    """
    cls = look_up_attention_map(method, caller="compute_attention_maps")
    if cls.class_specific:
        logits, maps = compute_class_attention_maps(model, images, method, batch_size, **kwargs)
        return logits, combine_class_maps(logits, maps)
    return cls(model, **kwargs)(images, batch_size=batch_size)
