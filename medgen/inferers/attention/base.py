"""``AttentionMapBase``: the call signature, batching and upsampling shared by every attention-map method.

Like MONAI's ``CAMBase`` (``monai.visualize.class_activation_maps``): a method is a small subclass that
implements :meth:`AttentionMapBase.compute` for one chunk of images; ``__call__`` runs it in eval mode over
chunks of ``batch_size`` and concatenates the results.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from medgen.inferers.attention.hooks import timm_vit
from medgen.inferers.attention.maps import tokens_to_maps

__all__ = ["AttentionMapBase", "check_choice", "fuse_heads"]


def check_choice(method: str, option: str, value: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``; otherwise a ``ValueError`` naming the method, option and choices."""
    if value not in choices:
        listed = " or ".join(repr(c) for c in choices)
        raise ValueError(f"attention map {method!r}: {option} must be {listed}, got {value!r}")
    return value


def fuse_heads(per_head: torch.Tensor, head_fusion: str) -> torch.Tensor:
    """(B, heads, ...) -> (B, ...) by the mean or the maximum over the heads."""
    return per_head.mean(1) if head_fusion == "mean" else per_head.amax(1)


class AttentionMapBase(ABC):
    """Attention maps of a timm ViT (or a medgen ``ViTClassifier``), one subclass per method.

    Calling an instance returns ``(logits (B, C), maps)`` with maps at the image resolution, min-max normalised
    to [0, 1] per map (a perfectly flat map is all zeros, so callers can detect it): (B, H, W) for a
    class-agnostic method, (B, len(classes), H, W) for a class-specific one (channel ``k`` explains logit
    ``classes[k]``; all logits by default).

    Args:
        model: the classifier; constructor options of a subclass are that method's hyper-parameters.
    """

    #: the method's name in :data:`~medgen.inferers.attention.registry.ATTENTION_MAPS`
    name: ClassVar[str]
    #: one map per class (``True``) or one per image (``False``)
    class_specific: ClassVar[bool] = False

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.vit = timm_vit(model)

    @property
    def grid_size(self) -> tuple[int, int]:
        """(rows, columns) of the patch-token grid."""
        return tuple(self.vit.patch_embed.grid_size)

    @property
    def num_prefix_tokens(self) -> int:
        """CLS and register tokens ahead of the patch tokens."""
        return int(self.vit.num_prefix_tokens)

    def __call__(
        self, images: torch.Tensor, classes: Sequence[int] | None = None, batch_size: int = 32
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and maps of ``images`` (B, channels, H, W), in eval mode, in chunks of ``batch_size``.

        The model's training flag is restored afterwards; chunking does not change the maps.
        """
        if batch_size < 1:
            raise ValueError(f"attention maps: batch_size must be >= 1, got {batch_size}")
        was_training = self.model.training
        self.model.eval()
        try:
            outs = [
                self.compute(images[i : i + batch_size], classes)
                for i in range(0, images.shape[0], batch_size)
            ]
        finally:
            self.model.train(was_training)
        return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])

    @abstractmethod
    def compute(
        self, images: torch.Tensor, classes: Sequence[int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and maps of one chunk, with the model in whatever mode it is in."""

    def select_classes(self, classes: Sequence[int] | None, num_logits: int) -> list[int]:
        """The logit indices to explain (all by default); a class-agnostic method refuses any selection."""
        if not self.class_specific:
            if classes is not None:
                raise ValueError(
                    f"attention map {self.name!r} is class-agnostic (one map per image) and takes no classes; "
                    "use a class-specific method (grad_rollout, gradcam, head)"
                )
            return []
        if classes is None:
            return list(range(num_logits))
        out = [int(c) for c in classes]
        bad = [c for c in out if not 0 <= c < num_logits]
        if bad:
            raise ValueError(
                f"class attention maps: class indices {bad} out of range for {num_logits} logits "
                f"(0..{num_logits - 1})"
            )
        return out

    def token_maps(self, token_scores: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """(..., patches) token scores -> (..., H, W) maps at the resolution of ``images``, in [0, 1]."""
        return tokens_to_maps(token_scores, self.grid_size, tuple(images.shape[-2:]))
