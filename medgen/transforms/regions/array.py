"""Pick the k most-attended rectangular regions of attention maps.

Steps per map: threshold at a percentile -> connected components (``scipy.ndimage.label``) -> one box per
component, sized to ``[min_size, max_size]`` around the component's attention peak -> boxes moved inside the
image -> non-maximum suppression (``torchvision.ops.nms``) -> the ``k`` boxes with the most attention mass.

Boxes are ``int64`` tensors ``(K, 4)`` in torchvision's ``(x0, y0, x1, y1)`` order with exclusive ends, so
``image[..., y0:y1, x0:x1]`` is the region. Border handling: a box that would stick out of the image is shifted
inside (keeping its size, so all regions of a batch can be super-resolved in one call); only a box larger than
the image itself is clipped. Nothing is dropped silently: a flat map (no attention preference, e.g. an image
with no finding) gives an explicit empty ``(0, 4)`` result, which callers treat as "enhance nothing".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.transforms import Transform

__all__ = ["SelectAttentionRegions", "select_attention_regions"]


def _place(center: int, size: int, limit: int) -> tuple[int, int]:
    """Interval of ``size`` centred on ``center``, shifted inside ``[0, limit)``; clipped only if size > limit."""
    size = min(size, limit)
    start = int(center) - size // 2
    start = min(max(start, 0), limit - size)
    return start, start + size


def _check_sizes(
    min_size: int | Sequence[int], max_size: int | Sequence[int]
) -> tuple[tuple[int, int], tuple[int, int]]:
    mn = (int(min_size), int(min_size)) if np.isscalar(min_size) else tuple(int(v) for v in min_size)
    mx = (int(max_size), int(max_size)) if np.isscalar(max_size) else tuple(int(v) for v in max_size)
    if len(mn) != 2 or len(mx) != 2 or min(mn) < 1 or any(a > b for a, b in zip(mn, mx)):
        raise ValueError(
            f"select_attention_regions: need 1 <= min_size <= max_size per axis (height, width); got "
            f"min_size={min_size}, max_size={max_size}"
        )
    return mn, mx  # type: ignore[return-value]


def _regions_one(
    amap: np.ndarray,
    k: int,
    percentile: float,
    mn: tuple[int, int],
    mx: tuple[int, int],
    nms_iou: float,
    flat_eps: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    h, w = amap.shape
    empty = torch.zeros((0, 4), dtype=torch.int64), torch.zeros((0,), dtype=torch.float32)
    if not np.isfinite(amap).all():
        raise ValueError(
            "select_attention_regions: attention map contains NaN/inf; check the classifier output"
        )
    if float(amap.max() - amap.min()) <= flat_eps:
        return empty
    from scipy import ndimage  # core dependencies, imported when regions are first selected
    from torchvision.ops import nms

    thr = np.percentile(amap, percentile)
    mask = amap >= thr
    labels, n = ndimage.label(mask)
    if n == 0:
        return empty
    idx = np.arange(1, n + 1)
    mass = ndimage.sum_labels(amap, labels, idx)
    peaks = ndimage.maximum_position(amap, labels, idx)
    slices = ndimage.find_objects(labels)
    boxes, scores = [], []
    for comp_mass, (py, px), sl in zip(mass, peaks, slices):
        ys, xs = sl
        bh = min(max(ys.stop - ys.start, mn[0]), mx[0])
        bw = min(max(xs.stop - xs.start, mn[1]), mx[1])
        # centre on the component's box unless the size changed, then on its attention peak
        cy = (ys.start + ys.stop) // 2 if bh == ys.stop - ys.start else py
        cx = (xs.start + xs.stop) // 2 if bw == xs.stop - xs.start else px
        y0, y1 = _place(cy, bh, h)
        x0, x1 = _place(cx, bw, w)
        boxes.append((x0, y0, x1, y1))
        scores.append(float(comp_mass))
    bt = torch.tensor(boxes, dtype=torch.float32)
    st = torch.tensor(scores, dtype=torch.float32)
    keep = nms(bt, st, float(nms_iou))[: int(k)]  # sorted by decreasing score
    return bt[keep].to(torch.int64), st[keep]


def select_attention_regions(
    maps: torch.Tensor | np.ndarray,
    k: int = 3,
    percentile: float = 95.0,
    min_size: int | Sequence[int] = 16,
    max_size: int | Sequence[int] = 64,
    nms_iou: float = 0.3,
    flat_eps: float = 1e-6,
    return_scores: bool = False,
) -> list[torch.Tensor] | tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Boxes of the ``k`` most-attended regions of each attention map.

    Args:
        maps: (B, H, W) or (H, W) attention maps (any scale; higher = more attention).
        k: at most this many boxes per map (fewer when fewer components survive NMS).
        percentile: pixels at or above this percentile of the map form the candidate mask.
        min_size: smallest box side (int or (height, width)); smaller components are grown around their peak.
        max_size: largest box side; larger components are cut to this size around their attention peak.
            ``min_size == max_size`` gives same-sized regions that a backend can process in one batch.
        nms_iou: boxes overlapping a higher-scored box by more than this IoU are suppressed.
        flat_eps: a map whose range is at most this is "flat" and yields an empty (0, 4) result.
        return_scores: also return each box's attention mass (sum of the map over its component).

    Returns:
        A list with one int64 (K_i, 4) ``(x0, y0, x1, y1)`` tensor per map (and the scores list).
    """
    if k < 0:
        raise ValueError(f"select_attention_regions: k must be >= 0, got {k}")
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"select_attention_regions: percentile must be in [0, 100], got {percentile}")
    mn, mx = _check_sizes(min_size, max_size)
    arr = (
        maps.detach().cpu().float().numpy()
        if isinstance(maps, torch.Tensor)
        else np.asarray(maps, np.float32)
    )
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"select_attention_regions: maps must be (B, H, W) or (H, W), got shape {arr.shape}")
    out = [_regions_one(a, k, percentile, mn, mx, nms_iou, flat_eps) for a in arr]
    boxes = [o[0] for o in out]
    return (boxes, [o[1] for o in out]) if return_scores else boxes


class SelectAttentionRegions(Transform):
    """Array transform: one (H, W) or (1, H, W) attention map -> int64 (K, 4) boxes; see ``select_attention_regions``."""

    def __init__(
        self,
        k: int = 3,
        percentile: float = 95.0,
        min_size: int | Sequence[int] = 16,
        max_size: int | Sequence[int] = 64,
        nms_iou: float = 0.3,
    ) -> None:
        _check_sizes(min_size, max_size)
        self.kwargs = dict(k=k, percentile=percentile, min_size=min_size, max_size=max_size, nms_iou=nms_iou)

    def __call__(self, attention: torch.Tensor | np.ndarray) -> torch.Tensor:
        a = torch.as_tensor(np.asarray(attention)) if not isinstance(attention, torch.Tensor) else attention
        if a.ndim == 3 and a.shape[0] == 1:
            a = a[0]
        if a.ndim != 2:
            raise ValueError(
                f"SelectAttentionRegions: expected an (H, W) or (1, H, W) map, got {tuple(a.shape)}"
            )
        return select_attention_regions(a, **self.kwargs)[0]  # type: ignore[index]
