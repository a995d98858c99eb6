"""HR -> LR degradation for super-resolution, and the interpolation baselines SR is compared against.

Resizing:

* ``"bicubic"``: ``torch.nn.functional.interpolate(mode="bicubic", antialias=True)``. With ``antialias``
  PyTorch uses the Keys kernel with a = -0.5 and widens it by the scale factor when downsampling, which is
  what PIL's ``BICUBIC`` and MATLAB's ``imresize`` do (matches PIL to ~1e-7 on float images).
* ``"area"``: ``F.interpolate(mode="area")``, a box average over each scale x scale block.
* ``"lanczos"``: PIL ``Image.resize(..., Image.LANCZOS)`` on float32 ("F" mode) planes, Lanczos-3; PIL
  widens the kernel when downsampling, so it is anti-aliased too. PyTorch has no Lanczos mode.
* ``"nearest"`` / ``"bilinear"`` (upsampling baselines): ``F.interpolate``.

Every output is clamped to [0, 1]: bicubic and Lanczos overshoot at edges, and SR metrics are computed on
[0, 1] images with ``data_range=1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import GaussianSmooth, Randomizable, Transform
from monai.utils import convert_to_dst_type, convert_to_tensor, look_up_option

DOWNSAMPLE_METHODS = ("bicubic", "area", "lanczos")
UPSAMPLE_METHODS = ("bicubic", "lanczos", "nearest", "bilinear")


def _check_scale(scale: int, what: str = "scale") -> int:
    if int(scale) != scale or scale < 1:
        raise ValueError(f"{what}={scale!r} must be a positive integer (2, 4, 8 for the SR bundles).")
    return int(scale)


def check_divisible(shape: Sequence[int], scale: int) -> None:
    """Raise when an HR image's (H, W) is not a multiple of ``scale``, naming the crop that would fix it."""
    h, w = int(shape[-2]), int(shape[-1])
    if h % scale or w % scale:
        raise ValueError(
            f"HR size {h}x{w} is not divisible by scale {scale}; crop the HR image to "
            f"{h - h % scale}x{w - w % scale} first (e.g. monai.transforms.CenterSpatialCrop) or pass "
            "crop_to_multiple=True to PairedDegradation. medgen never crops silently."
        )


def _as_batch(img: NdarrayOrTensor) -> tuple[torch.Tensor, int]:
    """(B, C, H, W) float32 view of a (H, W), (C, H, W) or (B, C, H, W) image, and its original ndim."""
    t = convert_to_tensor(img, track_meta=False, dtype=torch.float32)
    if t.ndim not in (2, 3, 4):
        raise ValueError(
            f"expected an image of shape (H, W), (C, H, W) or (B, C, H, W); got {tuple(t.shape)}."
        )
    ndim = t.ndim
    while t.ndim < 4:
        t = t.unsqueeze(0)
    return t, ndim


def _restore(out: torch.Tensor, ndim: int, like: NdarrayOrTensor) -> NdarrayOrTensor:
    out = out.reshape(out.shape[4 - ndim :]) if ndim < 4 else out
    if isinstance(like, MetaTensor):
        return out  # the caller decides the metadata of a resized image
    return convert_to_dst_type(out, like, dtype=out.dtype if isinstance(like, torch.Tensor) else np.float32)[
        0
    ]


def _pil_lanczos(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    from PIL import Image

    planes = t.detach().cpu().numpy().reshape(-1, *t.shape[-2:])
    out = np.stack(
        [np.asarray(Image.fromarray(p, mode="F").resize((size[1], size[0]), Image.LANCZOS)) for p in planes]
    )
    return torch.from_numpy(out).reshape(*t.shape[:-2], *size).to(t.device)


def resize(img: NdarrayOrTensor, size: Sequence[int], method: str) -> NdarrayOrTensor:
    """Resize (H, W), (C, H, W) or (B, C, H, W) images to ``size`` (H, W) with an anti-aliased ``method``."""
    method = look_up_option(method, tuple(sorted({*DOWNSAMPLE_METHODS, *UPSAMPLE_METHODS})))
    t, ndim = _as_batch(img)
    size = (int(size[0]), int(size[1]))
    if method == "lanczos":
        out = _pil_lanczos(t, size)
    elif method == "area":
        out = F.interpolate(t, size=size, mode="area")
    elif method == "nearest":
        out = F.interpolate(t, size=size, mode="nearest-exact")
    else:
        out = F.interpolate(t, size=size, mode=method, align_corners=False, antialias=True)
    return _restore(out.clamp(0.0, 1.0), ndim, img)


def downsample(hr: NdarrayOrTensor, scale: int, method: str = "bicubic") -> NdarrayOrTensor:
    """Anti-aliased HR -> LR by an integer ``scale`` (``"bicubic"``, ``"area"`` or ``"lanczos"``).

    Args:
        hr: (H, W), (C, H, W) or (B, C, H, W) image in [0, 1]; H and W must be multiples of ``scale``.
        scale: integer factor (2, 4, 8 in the SR bundles).
        method: one of :data:`DOWNSAMPLE_METHODS`.

    Returns:
        The LR image, same type and leading dimensions, spatial size (H/scale, W/scale), in [0, 1].
    """
    scale = _check_scale(scale)
    method = look_up_option(method, DOWNSAMPLE_METHODS)
    check_divisible(hr.shape, scale)
    return resize(hr, (hr.shape[-2] // scale, hr.shape[-1] // scale), method)


def upsample(lr: NdarrayOrTensor, scale: int, method: str = "bicubic") -> NdarrayOrTensor:
    """LR -> HR-size interpolation baseline (``"bicubic"``, ``"lanczos"``, ``"nearest"``, ``"bilinear"``).

    The reference every SR model is compared with; computed by the same code in every evaluation.
    """
    scale = _check_scale(scale)
    method = look_up_option(method, UPSAMPLE_METHODS)
    return resize(lr, (lr.shape[-2] * scale, lr.shape[-1] * scale), method)


def _sample(rng: np.random.RandomState, value: float | Sequence[float] | None, name: str) -> float | None:
    """A fixed value, or a uniform draw from a (low, high) range; None stays None."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"PairedDegradation: {name}={value} must be >= 0.")
        return float(value)
    low, high = (float(v) for v in value)
    if not 0 <= low <= high:
        raise ValueError(
            f"PairedDegradation: {name}={tuple(value)} must be a (low, high) range with 0 <= low <= high."
        )
    return float(rng.uniform(low, high))


class PairedDegradation(Randomizable, Transform):
    """Make an (LR, HR) pair from one HR image: blur, anti-aliased downsampling, Poisson-Gaussian noise.

    The order models an imaging chain: Gaussian blur of the HR image (detector point-spread function), then
    downsampling by ``scale``, then noise on the LR image: ``Poisson(lr * poisson_peak) / poisson_peak``
    (quantum noise, ``poisson_peak`` photons at full intensity) plus ``N(0, gaussian_std**2)`` (read-out
    noise), then clamped to [0, 1]. Each of ``blur_sigma``, ``poisson_peak`` and ``gaussian_std`` is fixed
    (a number), drawn uniformly per call from a ``(low, high)`` range, or off (None). All random draws come
    from ``self.R``, so ``set_random_state(seed)`` makes the output reproducible.

    Args:
        scale: integer downsampling factor (2, 4, 8).
        method: ``"bicubic"`` (default), ``"area"`` or ``"lanczos"`` (see module docs).
        blur_sigma: Gaussian blur sigma in HR pixels (MONAI ``GaussianSmooth``).
        poisson_peak: photon count at intensity 1 for Poisson noise (smaller = noisier).
        gaussian_std: standard deviation of additive Gaussian noise, in [0, 1] intensity units.
        crop_to_multiple: crop the HR image (bottom/right) to a multiple of ``scale`` instead of raising; the
            returned HR is the cropped one, so the pair stays aligned.

    Returns:
        ``(lr, hr)`` from a channel-first (C, H, W) image; same type as the input (a ``MetaTensor`` input gives
        ``MetaTensor`` outputs whose affine spacing is scaled for LR).
    """

    def __init__(
        self,
        scale: int = 4,
        method: str = "bicubic",
        blur_sigma: float | Sequence[float] | None = None,
        poisson_peak: float | Sequence[float] | None = None,
        gaussian_std: float | Sequence[float] | None = None,
        crop_to_multiple: bool = False,
    ) -> None:
        self.scale = _check_scale(scale)
        self.method = look_up_option(method, DOWNSAMPLE_METHODS)
        self.blur_sigma, self.poisson_peak, self.gaussian_std = blur_sigma, poisson_peak, gaussian_std
        self.crop_to_multiple = crop_to_multiple
        for name in ("blur_sigma", "poisson_peak", "gaussian_std"):  # validate ranges now, not mid-training
            _sample(np.random.RandomState(0), getattr(self, name), name)
        if isinstance(poisson_peak, (int, float)) and poisson_peak == 0:
            raise ValueError(
                "PairedDegradation: poisson_peak=0 would leave no photons; use None to turn it off."
            )
        self._params: dict[str, float | None] = {}

    def randomize(self, data: Any = None) -> None:
        self._params = {
            "blur_sigma": _sample(self.R, self.blur_sigma, "blur_sigma"),
            "poisson_peak": _sample(self.R, self.poisson_peak, "poisson_peak"),
            "gaussian_std": _sample(self.R, self.gaussian_std, "gaussian_std"),
        }

    def __call__(
        self, img: NdarrayOrTensor, randomize: bool = True
    ) -> tuple[NdarrayOrTensor, NdarrayOrTensor]:
        if img.ndim != 3:
            raise ValueError(
                f"PairedDegradation expects a channel-first (C, H, W) image; got shape {tuple(img.shape)}."
            )
        if randomize:
            self.randomize()
        hr = img
        h, w = img.shape[-2:]
        if h % self.scale or w % self.scale:
            if not self.crop_to_multiple:
                check_divisible(img.shape, self.scale)
            hr = img[:, : h - h % self.scale, : w - w % self.scale]
        t = convert_to_tensor(hr, track_meta=False, dtype=torch.float32)
        if t.numel() and (t.min() < 0 or t.max() > 1):
            raise ValueError(
                f"PairedDegradation expects HR intensities in [0, 1]; got {float(t.min()):g}..{float(t.max()):g}. "
                "Load with LoadRadiograph or scale with monai.transforms.ScaleIntensity first."
            )
        sigma = self._params.get("blur_sigma")
        blurred = GaussianSmooth(sigma=sigma)(t) if sigma else t
        lr = downsample(convert_to_tensor(blurred, track_meta=False), self.scale, self.method)
        lr = self._add_noise(lr)
        return self._wrap(lr, hr), hr

    def _add_noise(self, lr: torch.Tensor) -> torch.Tensor:
        peak, std = self._params.get("poisson_peak"), self._params.get("gaussian_std")
        out = lr.detach().cpu().numpy().astype(np.float64)
        if peak:
            out = self.R.poisson(out * peak) / peak
        if std:
            out = out + self.R.normal(0.0, std, size=out.shape)
        return torch.from_numpy(np.clip(out, 0.0, 1.0).astype(np.float32))

    def _wrap(self, lr: torch.Tensor, hr: NdarrayOrTensor) -> NdarrayOrTensor:
        if isinstance(hr, MetaTensor):
            # an LR pixel covers scale x scale HR pixels: scale the two spatial axes and move the origin to
            # the centre of the first block
            affine = hr.affine.clone()
            affine[:-1, -1] += affine[:-1, :2].sum(dim=1) * (self.scale - 1) / 2
            affine[:-1, :2] *= self.scale
            meta = {k: v for k, v in hr.meta.items() if k not in ("affine", "spatial_shape")}
            meta["spatial_shape"] = np.asarray(lr.shape[1:])
            meta["degradation"] = {"scale": self.scale, "method": self.method, **self._params}
            return MetaTensor(lr, affine=affine, meta=meta)
        return convert_to_dst_type(lr, hr, dtype=np.float32 if isinstance(hr, np.ndarray) else torch.float32)[
            0
        ]
