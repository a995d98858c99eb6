"""Class maps read from a token-scoring head (``ViTClassifier(head="csra")``), sampled finer by shift-and-stitch."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medgen.inferers.attention.base import AttentionMapBase, check_choice
from medgen.inferers.attention.maps import normalize_maps

__all__ = ["HeadClassMaps"]


def _shift_content(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Move the image content down/right by (dy, dx) pixels, replicating the top/left edge (size unchanged)."""
    h, w = images.shape[-2:]
    return F.pad(images, (dx, 0, dy, 0), mode="replicate")[..., :h, :w]


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


class HeadClassMaps(AttentionMapBase):
    """Per-class patch-token scores of a token-scoring head as maps: a class activation map read from the model.

    No gradients and no post-hoc attribution: ``model.class_token_scores`` gives (B, C, patches) scores and
    ``model.pool_token_scores`` the logits. ``shifts = s`` > 1 samples the scores ``s`` times finer than the token
    grid by shift-and-stitch (Long, Shelhamer & Darrell, "Fully Convolutional Networks", CVPR 2015): the image
    content is moved by ``patch * j / s`` pixels (``j < s``, both axes, edges replicated), so the tokens of each
    pass sit between those of the others, and the ``s * s`` score grids are interleaved into one grid of
    ``patch / s``-pixel steps before bilinear upsampling. With ``s = 1`` the map is the token grid upsampled (its
    maximum lies at a token centre). ``stitch="mean"`` instead upsamples each pass on its own (shifted) token
    centres and averages the ``s * s`` maps: smoother, with no stripes where the passes' score levels differ
    (interleaving shows them on low-contrast maps), at the cost of a blurrier peak. The logits are those of the
    unshifted image.

    Args:
        model: a classifier with ``head == "csra"``, ``class_token_scores`` and ``pool_token_scores``.
        shifts: passes per axis; must divide the patch size (1, 2, 4, ...).
        stitch: ``interleave`` or ``mean``.
    """

    name = "head"
    class_specific = True

    def __init__(self, model: nn.Module, shifts: int = 2, stitch: str = "interleave") -> None:
        if getattr(model, "head", None) != "csra" or not hasattr(model, "class_token_scores"):
            raise ValueError(
                "attention map method 'head' needs a classifier that scores patch tokens "
                "(ViTClassifier(head='csra')); use rollout, grad_rollout or gradcam for a CLS-token head"
            )
        self.stitch = check_choice(self.name, "stitch", stitch, ("interleave", "mean"))
        super().__init__(model)
        self.shifts = shifts

    @torch.no_grad()
    def compute(
        self, images: torch.Tensor, classes: Sequence[int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        model = self.model
        gh, gw = self.grid_size
        h, w = images.shape[-2:]
        patch = h // gh
        if int(self.shifts) < 1 or patch % int(self.shifts):
            raise ValueError(
                f"attention map 'head': shifts must divide the {patch}-px patch (1, 2, 4, ...), got {self.shifts}"
            )
        s = int(self.shifts)
        scores = model.class_token_scores(images)  # (B, C, N)
        logits = model.pool_token_scores(scores)
        cls_idx = self.select_classes(classes, logits.shape[1])
        if s == 1:
            return logits, self.token_maps(scores[:, cls_idx], images)
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
        if self.stitch == "mean":
            # token i of pass j is centred at patch * (i + 1/2) - j * step: pixel p sits at fractional token
            # index (p + 0.5 + j * step) / patch - 1/2
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
