"""Radiograph display operations, the four enhancement presets of the text-to-CXR app, and image statistics.

Every operation takes a channel-first (C, H, W) image in [0, 1] (numpy or torch), works on each channel as a
2D image, and returns the same type and shape in [0, 1]. They are for *display* of generated or loaded
radiographs (the ``cxr_text_ldm`` bundle's presets), not for training-time normalisation.

Library use: CLAHE and unsharp masking are scikit-image's (``equalize_adapthist``, ``unsharp_mask``); the
median filter is MONAI's ``MedianSmooth`` and histogram equalisation MONAI's ``HistogramNormalize``.
Windowing and the vignette are one line of arithmetic each.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from monai.config import NdarrayOrTensor
from monai.transforms import HistogramNormalize, MedianSmooth, Transform
from monai.utils import convert_to_dst_type, convert_to_numpy, look_up_option


def _check(img: NdarrayOrTensor, op: str) -> np.ndarray:
    """float32 numpy (C, H, W) copy of ``img``; refuses other shapes and values outside [0, 1]."""
    arr = convert_to_numpy(img, dtype=np.float32)
    if arr.ndim != 3:
        raise ValueError(f"{op}: expected a channel-first (C, H, W) image, got shape {arr.shape}.")
    if arr.size and (arr.min() < -1e-6 or arr.max() > 1 + 1e-6 or not np.isfinite(arr).all()):
        raise ValueError(
            f"{op}: expects intensities in [0, 1], got {arr.min():g}..{arr.max():g}. Load with LoadRadiograph "
            "or scale with monai.transforms.ScaleIntensity first."
        )
    return np.clip(arr, 0.0, 1.0)


def _back(out: np.ndarray, like: NdarrayOrTensor) -> NdarrayOrTensor:
    out = np.clip(out, 0.0, 1.0).astype(np.float32)
    return convert_to_dst_type(out, like, dtype=out.dtype if isinstance(like, np.ndarray) else None)[0]


def window(img: NdarrayOrTensor, center: float = 0.5, width: float = 1.0) -> NdarrayOrTensor:
    """Linear window: ``center - width/2`` maps to 0 and ``center + width/2`` to 1, clipped outside."""
    if width <= 0:
        raise ValueError(f"window: width={width} must be > 0.")
    arr = _check(img, "window")
    return _back((arr - (center - width / 2)) / width, img)


def clahe(
    img: NdarrayOrTensor, clip_limit: float = 0.01, kernel_size: int | None = None, nbins: int = 256
) -> NdarrayOrTensor:
    """Contrast-limited adaptive histogram equalisation (skimage ``equalize_adapthist``).

    Args:
        clip_limit: normalised clip limit in (0, 1]; higher gives more contrast.
        kernel_size: tile size in pixels; None = 1/8 of each side (skimage default).
        nbins: histogram bins.
    """
    from skimage.exposure import equalize_adapthist

    arr = _check(img, "clahe")
    out = np.stack(
        [equalize_adapthist(c, kernel_size=kernel_size, clip_limit=clip_limit, nbins=nbins) for c in arr]
    )
    return _back(out, img)


def median_filter(img: NdarrayOrTensor, radius: int = 1) -> NdarrayOrTensor:
    """Median over a (2 radius + 1)^2 window (MONAI ``MedianSmooth``): removes salt-and-pepper noise."""
    arr = _check(img, "median_filter")
    if radius < 1:
        return _back(arr, img)
    out = convert_to_numpy(MedianSmooth(radius=radius)(arr), dtype=np.float32)
    return _back(out, img)


def unsharp_mask(img: NdarrayOrTensor, radius: float = 1.0, amount: float = 1.0) -> NdarrayOrTensor:
    """``img + amount * (img - gaussian(img, radius))`` (skimage ``unsharp_mask``), clipped to [0, 1]."""
    from skimage.filters import unsharp_mask as _unsharp

    arr = _check(img, "unsharp_mask")
    out = np.stack([_unsharp(c, radius=radius, amount=amount, preserve_range=True) for c in arr])
    return _back(out, img)


def equalize_histogram(img: NdarrayOrTensor, num_bins: int = 256) -> NdarrayOrTensor:
    """Global histogram equalisation onto [0, 1] (MONAI ``HistogramNormalize``)."""
    arr = _check(img, "equalize_histogram")
    out = np.stack(
        [convert_to_numpy(HistogramNormalize(num_bins=num_bins, min=0, max=1)(c[None]))[0] for c in arr]
    )
    return _back(out, img)


def vignette(img: NdarrayOrTensor, strength: float = 0.3, power: float = 2.0) -> NdarrayOrTensor:
    """Darken towards the corners: multiply by ``1 - strength * r**power``, r = 0 at the centre, 1 at a corner."""
    if not 0 <= strength <= 1:
        raise ValueError(f"vignette: strength={strength} must be in [0, 1].")
    arr = _check(img, "vignette")
    h, w = arr.shape[-2:]
    y = (np.arange(h) - (h - 1) / 2) / max((h - 1) / 2, 1)
    x = (np.arange(w) - (w - 1) / 2) / max((w - 1) / 2, 1)
    r = np.sqrt(y[:, None] ** 2 + x[None, :] ** 2) / np.sqrt(2)
    return _back(arr * (1 - strength * r**power), img)


OPS: dict[str, Callable[..., NdarrayOrTensor]] = {
    "window": window,
    "clahe": clahe,
    "median_filter": median_filter,
    "unsharp_mask": unsharp_mask,
    "equalize_histogram": equalize_histogram,
    "vignette": vignette,
}

# Each preset is an ordered list of (operation, parameters); docs/transforms.md shows the same table.
PRESETS: dict[str, tuple[tuple[str, dict[str, Any]], ...]] = {
    # gentle local contrast and mild sharpening: a neutral reading view
    "balanced": (
        ("clahe", {"clip_limit": 0.01}),
        ("unsharp_mask", {"radius": 1.0, "amount": 0.5}),
    ),
    # narrower window then strong CLAHE: lung markings and mediastinal edges stand out
    "high_contrast": (
        ("window", {"center": 0.5, "width": 0.8}),
        ("clahe", {"clip_limit": 0.03}),
    ),
    # denoise first so that strong sharpening enhances structure, not noise
    "sharp_detail": (
        ("median_filter", {"radius": 1}),
        ("unsharp_mask", {"radius": 2.0, "amount": 1.5}),
    ),
    # the look of a printed film: equalised, slightly softened grain, darker film edges
    "radiographic_film": (
        ("equalize_histogram", {"num_bins": 256}),
        ("median_filter", {"radius": 1}),
        ("unsharp_mask", {"radius": 1.0, "amount": 0.3}),
        ("vignette", {"strength": 0.25, "power": 2.0}),
    ),
}


def apply_preset(img: NdarrayOrTensor, name: str) -> NdarrayOrTensor:
    """Apply the named preset (one of :data:`PRESETS`), operation by operation."""
    for op, params in PRESETS[look_up_option(name, tuple(PRESETS))]:
        img = OPS[op](img, **params)
    return img


def image_statistics(img: NdarrayOrTensor) -> dict[str, float]:
    """Summary figures of a [0, 1] image (all channels together), as shown beside generated images.

    Returns:
        ``contrast`` (standard deviation), ``sharpness`` (variance of the 2D Laplacian, per channel,
        averaged), ``entropy`` (Shannon entropy in bits of the 256-bin histogram over [0, 1]) and ``mean``.
    """
    from scipy.ndimage import laplace

    arr = _check(img, "image_statistics").astype(np.float64)
    hist, _ = np.histogram(arr, bins=256, range=(0.0, 1.0))
    p = hist[hist > 0] / max(hist.sum(), 1)
    return {
        "contrast": float(arr.std()),
        "sharpness": float(np.mean([laplace(c, mode="reflect").var() for c in arr])),
        "entropy": float(-(p * np.log2(p)).sum()),
        "mean": float(arr.mean()),
    }


class _Op(Transform):
    """A display operation as a MONAI ``Transform`` with fixed parameters."""

    op: str = ""

    def __init__(self, **params: Any) -> None:
        self.params = params

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        return OPS[self.op](img, **self.params)


class Window(_Op):
    """Linear window ``Window(center=0.5, width=1.0)``; see :func:`window`."""

    op = "window"

    def __init__(self, center: float = 0.5, width: float = 1.0) -> None:
        super().__init__(center=center, width=width)


class CLAHE(_Op):
    """CLAHE ``CLAHE(clip_limit=0.01, kernel_size=None, nbins=256)``; see :func:`clahe`."""

    op = "clahe"

    def __init__(self, clip_limit: float = 0.01, kernel_size: int | None = None, nbins: int = 256) -> None:
        super().__init__(clip_limit=clip_limit, kernel_size=kernel_size, nbins=nbins)


class MedianFilter(_Op):
    """Median filter ``MedianFilter(radius=1)``; see :func:`median_filter`."""

    op = "median_filter"

    def __init__(self, radius: int = 1) -> None:
        super().__init__(radius=radius)


class UnsharpMask(_Op):
    """Unsharp masking ``UnsharpMask(radius=1.0, amount=1.0)``; see :func:`unsharp_mask`."""

    op = "unsharp_mask"

    def __init__(self, radius: float = 1.0, amount: float = 1.0) -> None:
        super().__init__(radius=radius, amount=amount)


class EqualizeHistogram(_Op):
    """Global histogram equalisation ``EqualizeHistogram(num_bins=256)``; see :func:`equalize_histogram`."""

    op = "equalize_histogram"

    def __init__(self, num_bins: int = 256) -> None:
        super().__init__(num_bins=num_bins)


class Vignette(_Op):
    """Corner darkening ``Vignette(strength=0.3, power=2.0)``; see :func:`vignette`."""

    op = "vignette"

    def __init__(self, strength: float = 0.3, power: float = 2.0) -> None:
        super().__init__(strength=strength, power=power)


class EnhancePreset(Transform):
    """One of the named enhancement presets: ``EnhancePreset("balanced")``.

    Args:
        name: ``"balanced"``, ``"high_contrast"``, ``"sharp_detail"`` or ``"radiographic_film"`` (see
            :data:`PRESETS` for each composition). An unknown name raises MONAI's ``look_up_option`` error
            with the closest match.
    """

    def __init__(self, name: str = "balanced") -> None:
        self.name = look_up_option(name, tuple(PRESETS))

    @property
    def steps(self) -> Sequence[tuple[str, Mapping[str, Any]]]:
        return PRESETS[self.name]

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        return apply_preset(img, self.name)
