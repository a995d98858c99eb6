"""PSNR and SSIM for super-resolution, on [0, 1] images with ``data_range=1`` and a border shave.

Wraps MONAI's :class:`~monai.metrics.PSNRMetric` and :class:`~monai.metrics.SSIMMetric`, adding the two things
an honest SR comparison needs: a border shave (default 4 px; SR borders are unreliable for every method) and a
hard guard on the value range. The peak is always the constant ``data_range=1`` (never ``image.max()``, the
bug of the published comparison this project follows), and a target outside [0, 1] is refused with an error
instead of scoring 0-255 data against a peak of 1 (which reads ~48 dB too high). Predictions are clipped to
[0, 1] before scoring, as a saved image would be.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from monai.handlers import IgniteMetricHandler, from_engine
from monai.metrics import PSNRMetric, SSIMMetric

DATA_RANGE = 1.0
RANGE_TOLERANCE = 1e-3


def shave_border(x: torch.Tensor, shave: int) -> torch.Tensor:
    """Drop ``shave`` pixels at each spatial border of a ``(B, C, H, W)`` tensor."""
    if shave < 0:
        raise ValueError(f"shave={shave} must be >= 0.")
    if shave == 0:
        return x
    if min(x.shape[-2:]) <= 2 * shave:
        raise ValueError(
            f"image of size {tuple(x.shape[-2:])} is too small for a {shave}-pixel border shave."
        )
    return x[..., shave:-shave, shave:-shave]


def _prepare(
    pred: torch.Tensor, target: torch.Tensor, shave: int, name: str
) -> tuple[torch.Tensor, torch.Tensor]:
    if pred.shape != target.shape:
        raise ValueError(
            f"{name}: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape."
        )
    if pred.ndim != 4:
        raise ValueError(
            f"{name}: expected (batch, channel, height, width) tensors, got {tuple(pred.shape)}."
        )
    lo, hi = float(target.min()), float(target.max())
    if lo < -RANGE_TOLERANCE or hi > DATA_RANGE + RANGE_TOLERANCE:
        raise ValueError(
            f"{name}: target values span [{lo:.4g}, {hi:.4g}] but metrics use data_range=1 on [0, 1] images; "
            f"scale the data to [0, 1] first (e.g. divide 8-bit images by 255, 12-bit by 4095)."
        )
    pred = pred.float().clamp(0.0, DATA_RANGE)
    return shave_border(pred, shave), shave_border(target.float(), shave)


class ShavedPSNRMetric(PSNRMetric):
    """PSNR in dB with peak ``data_range=1``, after a border shave; one value per image (``reduction``)."""

    def __init__(self, shave: int = 4, reduction: str = "mean", get_not_nans: bool = False) -> None:
        super().__init__(max_val=DATA_RANGE, reduction=reduction, get_not_nans=get_not_nans)
        self.shave = shave

    def _compute_metric(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        y_pred, y = _prepare(y_pred, y, self.shave, "PSNR")
        return super()._compute_metric(y_pred, y)


class ShavedSSIMMetric(SSIMMetric):
    """SSIM (Gaussian window 11, sigma 1.5) with ``data_range=1``, after a border shave; one value per image."""

    def __init__(self, shave: int = 4, reduction: str = "mean", get_not_nans: bool = False) -> None:
        super().__init__(
            spatial_dims=2, data_range=DATA_RANGE, reduction=reduction, get_not_nans=get_not_nans
        )
        self.shave = shave

    def _compute_metric(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        y_pred, y = _prepare(y_pred, y, self.shave, "SSIM")
        return super()._compute_metric(y_pred, y)


def psnr(pred: torch.Tensor, target: torch.Tensor, shave: int = 4) -> torch.Tensor:
    """Per-image PSNR (dB), shape ``(B,)``; ``inf`` for identical images."""
    return ShavedPSNRMetric(shave, reduction="none")(pred, target).reshape(-1)


def ssim(pred: torch.Tensor, target: torch.Tensor, shave: int = 4) -> torch.Tensor:
    """Per-image SSIM, shape ``(B,)``; 1 for identical images."""
    return ShavedSSIMMetric(shave, reduction="none")(pred, target).reshape(-1)


def summarize(values: Sequence[float] | torch.Tensor) -> dict[str, float]:
    """Mean, sample standard deviation and count of per-image values."""
    v = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    n = int(v.numel())
    if n == 0:
        raise ValueError("summarize: no per-image values to summarise.")
    std = float(v.std(unbiased=True)) if n > 1 else 0.0
    return {"mean": float(v.mean()), "std": 0.0 if math.isnan(std) else std, "n": n}


def sr_metric_handlers(
    shave: int = 4, pred_key: str = "pred", label_key: str = "label"
) -> dict[str, IgniteMetricHandler]:
    """``{"psnr": ..., "ssim": ...}`` Ignite handlers for MONAI evaluators, keeping per-image details.

    The per-image values land in ``engine.state.metric_details["psnr"]`` (``save_details=True``) so mean
    *and* standard deviation can be reported.
    """
    transform = from_engine([pred_key, label_key])
    return {
        "psnr": IgniteMetricHandler(ShavedPSNRMetric(shave), output_transform=transform, save_details=True),
        "ssim": IgniteMetricHandler(ShavedSSIMMetric(shave), output_transform=transform, save_details=True),
    }
