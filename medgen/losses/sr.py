"""Losses for super-resolution training: pixel, total variation, adversarial (standard and relativistic)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_PIXEL = {"l1": nn.L1Loss, "mse": nn.MSELoss, "charbonnier": None}


class PixelLoss(nn.Module):
    """Pixel loss between prediction and target: ``"l1"`` (default), ``"mse"`` or ``"charbonnier"``.

    Args:
        kind: which distance.
        eps: Charbonnier smoothing constant.
    """

    def __init__(self, kind: str = "l1", eps: float = 1e-3) -> None:
        super().__init__()
        if kind not in _PIXEL:
            raise ValueError(f"PixelLoss: kind={kind!r} is not one of {sorted(_PIXEL)}.")
        self.kind, self.eps = kind, eps
        self.fn = _PIXEL[kind]() if _PIXEL[kind] else None

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(
                f"PixelLoss: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ."
            )
        if self.fn is not None:
            return self.fn(pred, target)
        return torch.sqrt((pred - target) ** 2 + self.eps**2).mean()


class TotalVariationLoss(nn.Module):
    """Anisotropic total variation, mean absolute difference of neighbouring pixels.

    Hand-written because neither MONAI nor Ignite ships a TV loss; it is two lines.
    """

    def forward(self, pred: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        dh = (pred[..., 1:, :] - pred[..., :-1, :]).abs().mean()
        dw = (pred[..., :, 1:] - pred[..., :, :-1]).abs().mean()
        return dh + dw


class AdversarialLoss(nn.Module):
    """GAN losses on discriminator logits, in BCE-with-logits form.

    ``mode="standard"``: non-saturating GAN (Goodfellow et al.). ``mode="relativistic"``: relativistic average
    GAN (ESRGAN), where each side is judged against the mean logit of the other.

    Use :meth:`discriminator_loss` for the D step and :meth:`generator_loss` for the G step.
    """

    def __init__(self, mode: str = "standard", label_smoothing: float = 0.0) -> None:
        super().__init__()
        if mode not in ("standard", "relativistic"):
            raise ValueError(f"AdversarialLoss: mode={mode!r} must be 'standard' or 'relativistic'.")
        self.mode, self.smooth = mode, label_smoothing

    def _bce(self, logits: torch.Tensor, real: bool) -> torch.Tensor:
        target = torch.full_like(logits, (1.0 - self.smooth) if real else 0.0)
        return F.binary_cross_entropy_with_logits(logits, target)

    def discriminator_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        if self.mode == "relativistic":
            return 0.5 * (
                self._bce(real_logits - fake_logits.mean(), True)
                + self._bce(fake_logits - real_logits.mean(), False)
            )
        return 0.5 * (self._bce(real_logits, True) + self._bce(fake_logits, False))

    def generator_loss(
        self, fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None
    ) -> torch.Tensor:
        if self.mode == "relativistic":
            if real_logits is None:
                raise ValueError("AdversarialLoss(mode='relativistic').generator_loss needs real_logits too.")
            return 0.5 * (
                self._bce(real_logits - fake_logits.mean(), False)
                + self._bce(fake_logits - real_logits.mean(), True)
            )
        return self._bce(fake_logits, True)

    def forward(self, fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None) -> torch.Tensor:
        """Generator loss (the usual call from a training loop)."""
        return self.generator_loss(fake_logits, real_logits)
