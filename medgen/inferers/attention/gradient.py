"""Class-specific maps from gradients of the logits: gradient-weighted attention rollout and token Grad-CAM.

The attention (and, for Grad-CAM, the tokens entering the last block) is recorded *with* its autograd graph and
``torch.autograd.grad`` of each class's logit, summed over the batch, gives every sample's gradient at once
(samples are independent in eval mode). Parameter gradients are never touched; the maps work inside
``torch.no_grad()`` and with frozen weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from medgen.inferers.attention.base import AttentionMapBase, check_choice, fuse_heads
from medgen.inferers.attention.hooks import forward_with_graph

__all__ = ["GradCAMAttention", "GradRollout"]


class GradRollout(AttentionMapBase):
    """Class-specific gradient-weighted attention rollout (Chefer, Gur & Wolf, ICCV 2021, eq. 5-6).

    For each class ``c``: ``R = I``; for every block ``l >= start_layer``:
    ``R <- R + fuse_heads(clamp(dlogit_c/dA_l * A_l, min=0)) @ R``; the map is the CLS row of ``R`` over the
    patch tokens ("Generic Attention-model Explainability for Interpreting Bi-Modal and Encoder-Decoder
    Transformers"; the gradient-times-attention weighting also appears in their CVPR 2021 paper). It explains a
    CLS-token head only: a ``ViTClassifier(head="csra")`` is refused (its logits never read the CLS token).

    Args:
        model: the classifier.
        start_layer: first block included (later blocks only give a map closer to the decision); negative
            values count from the last block.
        head_fusion: ``mean`` (the paper) or ``max`` over heads.
        weighting: ``positive`` (the paper: ``clamp(grad * A, min=0)``) or ``abs`` (``|grad * A|``: keeps
            attention whose gradient is negative, which in a saturated model can be the one that decides).
    """

    name = "grad_rollout"
    class_specific = True

    def __init__(
        self, model: nn.Module, start_layer: int = 0, head_fusion: str = "mean", weighting: str = "positive"
    ) -> None:
        self.head_fusion = check_choice(self.name, "head_fusion", head_fusion, ("mean", "max"))
        self.weighting = check_choice(self.name, "weighting", weighting, ("positive", "abs"))
        super().__init__(model)
        depth = len(self.vit.blocks)
        if not -depth <= start_layer < depth:
            raise ValueError(
                f"attention map 'grad_rollout': start_layer={start_layer} out of range for {depth} blocks"
            )
        self.start_layer = start_layer % depth
        if (
            getattr(model, "head", None) == "csra"
        ):  # a ViTClassifier's head name (a timm ViT's .head is a module)
            raise ValueError(
                f"attention map 'grad_rollout' explains a CLS-token head (it reads the CLS row of the relevance matrix); this "
                f"classifier has head={model.head!r}, whose logits never read the CLS token, so every map would "
                "be flat. Use the 'head' maps (the head's own token scores) or 'gradcam'"
            )

    @torch.enable_grad()  # gradients are needed even when the caller is inside torch.no_grad()
    def compute(
        self, images: torch.Tensor, classes: Sequence[int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits, atts, _ = forward_with_graph(self.model, images)
        cls_idx = self.select_classes(classes, logits.shape[1])
        p = self.num_prefix_tokens
        rows = []
        for k, c in enumerate(cls_idx):
            grads = torch.autograd.grad(logits[:, c].sum(), atts, retain_graph=k < len(cls_idx) - 1)
            b, _, t, _ = atts[0].shape
            r = torch.eye(t, dtype=atts[0].dtype, device=atts[0].device).expand(b, t, t)
            for a, g in list(zip(atts, grads))[self.start_layer :]:
                cam = g * a.detach()
                cam = cam.clamp(min=0) if self.weighting == "positive" else cam.abs()
                r = r + fuse_heads(cam, self.head_fusion) @ r
            rows.append(r[:, 0, p:])
        return logits.detach(), self.token_maps(torch.stack(rows, 1), images)  # stacked: (B, C, patches)


class GradCAMAttention(AttentionMapBase):
    """Grad-CAM per class on the patch tokens entering the last block: ``relu(sum_k mean_tokens(dlogit_c/dX_k) * X_k)``.

    The last block's own patch outputs do not reach a CLS-token head (their gradient is zero), so the tokens
    entering it are the last ones a gradient can weight.

    Args:
        model: the classifier.
    """

    name = "gradcam"
    class_specific = True

    @torch.enable_grad()
    def compute(
        self, images: torch.Tensor, classes: Sequence[int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits, _atts, tokens = forward_with_graph(self.model, images, capture_tokens=True)
        assert tokens is not None
        cls_idx = self.select_classes(classes, logits.shape[1])
        p = self.num_prefix_tokens
        feats = tokens[:, p:]  # (B, patches, D)
        rows = []
        for k, c in enumerate(cls_idx):
            (g,) = torch.autograd.grad(logits[:, c].sum(), tokens, retain_graph=k < len(cls_idx) - 1)
            w = g[:, p:].mean(1, keepdim=True)  # (B, 1, D)
            rows.append(torch.relu((w * feats.detach()).sum(-1)))
        return logits.detach(), self.token_maps(torch.stack(rows, 1), images)
