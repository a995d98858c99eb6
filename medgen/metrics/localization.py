"""Does the classifier look at the finding? Attention vs ground-truth finding masks.

* Pointing game: a hit when the map's maximum falls inside the finding mask (optionally within ``tolerance``
  pixels of it, Euclidean).
* Attention mass share: fraction of the map's total mass inside the mask.

Maps are class-agnostic (one (H, W) map per image, scored against every finding of the image) or class-specific
(one (C, H, W) stack per image with ``labels`` naming the channels: finding ``n`` is scored on channel
``labels.index(n)``).

Both are reported beside a uniform-attention baseline (an attention map that prefers nothing): its expected
pointing-game hit rate and mass share both equal the mask's area share, so a map must beat the mask size to
show localisation. With a pointing tolerance the random point's hit rate is the share of the mask dilated by the
tolerance (``uniform_pointing_baseline``).

Real datasets with finding bounding boxes (NIH ``BBox_List_2017.csv``) are scored on box masks at the classifier's
input resolution (:func:`boxes_to_masks`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["attention_mass_share", "boxes_to_masks", "localization_report", "pointing_game_hit"]


def _np(a: Any) -> np.ndarray:
    return np.asarray(a.detach().cpu() if hasattr(a, "detach") else a)


def pointing_game_hit(attention: Any, mask: Any, tolerance: float = 0) -> bool:
    """True when the attention maximum lies in ``mask`` (dilated by ``tolerance`` pixels)."""
    a, m = _np(attention).astype(np.float64), _np(mask).astype(bool)
    if a.shape != m.shape:
        raise ValueError(f"pointing_game_hit: attention {a.shape} and mask {m.shape} differ in shape")
    y, x = np.unravel_index(int(np.argmax(a)), a.shape)
    return bool(_dilate(m, tolerance)[y, x])  # within `tolerance` px (Euclidean) of the mask


def _dilate(mask: np.ndarray, tolerance: float) -> np.ndarray:
    """Pixels within ``tolerance`` px (Euclidean) of ``mask``, as the pointing game counts them."""
    if tolerance <= 0 or not mask.any():
        return mask
    from scipy.ndimage import distance_transform_edt

    return distance_transform_edt(~mask) <= tolerance


def attention_mass_share(attention: Any, mask: Any) -> float:
    """Share of (non-negative) attention mass inside ``mask``; a flat/zero map counts as uniform."""
    a, m = np.clip(_np(attention).astype(np.float64), 0, None), _np(mask).astype(bool)
    total = a.sum()
    if total <= 0:
        return float(m.mean())
    return float(a[m].sum() / total)


def localization_report(
    attention: Sequence[Any],
    masks: Sequence[Mapping[str, Any]],
    tolerance: float = 0,
    labels: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Pointing game and mass share over every (image, finding) pair with a non-empty mask, per finding and overall.

    Args:
        attention: per image an (H, W) map (scored against every finding), or, with ``labels``, a (C, H, W)
            stack of class-specific maps: finding ``n`` is scored on channel ``labels.index(n)``.
        masks: per image ``{finding: bool (H, W) mask}`` (empty masks are ignored: finding absent).
        labels: class names in channel order (e.g. ``model.labels``); required for (C, H, W) maps.
    """
    if len(attention) != len(masks):
        raise ValueError(f"localization_report: {len(attention)} maps for {len(masks)} mask sets")
    names = list(labels) if labels is not None else None
    if names is not None and len(set(names)) != len(names):
        raise ValueError(f"localization_report: `labels` has duplicate names: {names}")
    rows: dict[str, list[tuple[float, float, float]]] = {}
    for i, (amap, mset) in enumerate(zip(attention, masks)):
        a = _np(amap)
        if a.ndim == 3:
            if names is None:
                raise ValueError(
                    f"localization_report: image {i} has class-specific maps {a.shape} (C, H, W) but no `labels`; "
                    "pass labels=<class names in channel order> (e.g. model.labels)"
                )
            if a.shape[0] != len(names):
                raise ValueError(
                    f"localization_report: image {i} has {a.shape[0]} map channels for {len(names)} labels; "
                    "the channels must be the classes in `labels` order"
                )
        elif a.ndim != 2:
            raise ValueError(
                f"localization_report: image {i} map has shape {a.shape}; expected (H, W) or (C, H, W) with `labels`"
            )
        for name, mask in mset.items():
            m = _np(mask).astype(bool)
            if not m.any():
                continue
            if a.ndim == 3:
                if name not in names:  # type: ignore[operator]
                    raise ValueError(
                        f"localization_report: finding {name!r} (image {i}) has a mask but no map channel; "
                        f"`labels` are {names}"
                    )
                fmap = a[names.index(name)]  # type: ignore[union-attr]
            else:
                fmap = a
            if fmap.shape != m.shape:
                raise ValueError(
                    f"localization_report: image {i} map {fmap.shape} and mask of {name!r} {m.shape} differ in shape"
                )
            rows.setdefault(name, []).append(
                (
                    float(pointing_game_hit(fmap, m, tolerance)),
                    attention_mass_share(fmap, m),
                    float(m.mean()),
                    float(_dilate(m, tolerance).mean()),
                )
            )

    def summary(r: list[tuple[float, float, float]]) -> dict[str, float]:
        arr = np.asarray(r)
        return {
            "n": int(len(arr)),
            "pointing_game": float(arr[:, 0].mean()),
            "mass_share": float(arr[:, 1].mean()),
            "uniform_baseline": float(arr[:, 2].mean()),  # expected value of both metrics for a flat map
            # a random point's hit rate at this tolerance: the share of the mask dilated by `tolerance` px
            "uniform_pointing_baseline": float(arr[:, 3].mean()),
        }

    all_rows = [x for r in rows.values() for x in r]
    return {
        "overall": summary(all_rows) if all_rows else {"n": 0},
        "per_finding": {k: summary(v) for k, v in sorted(rows.items())},
        "tolerance_px": float(tolerance),
    }


def boxes_to_masks(
    boxes: Sequence[Mapping[str, Any]],
    image_hw: tuple[int, int],
    size: int,
    box_scale: float = 1.0,
) -> dict[str, np.ndarray]:
    """Finding bounding boxes of a native image as ``{finding: bool (size, size) mask}`` at the classifier's input.

    The boxes (``{"label", "box": [x, y, w, h]}``, the ``nih_cxr14`` reader's ``boxes``) go through the same
    geometry as the image: centred zero padding to a square of the longer side
    (:func:`medgen.inferers.attention_sr.pad_square`), then resizing to ``size``. Several boxes of one finding are
    united. A box covers every pixel it overlaps (at least one).

    Args:
        boxes: the item's boxes (pixels of the image the coordinates refer to).
        image_hw: (height, width) of the native image file.
        size: side of the classifier's square input.
        box_scale: factor from the box coordinates to the file's pixels (NIH boxes refer to the 1024-px
            originals: ``file_side / 1024`` for a downsampled copy).
    """
    h, w = int(image_hw[0]), int(image_hw[1])
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    f = size / side
    out: dict[str, np.ndarray] = {}
    for b in boxes:
        x, y, bw, bh = (float(v) * box_scale for v in b["box"])
        x0, y0 = int(np.floor((x + left) * f)), int(np.floor((y + top) * f))
        x1, y1 = int(np.ceil((x + bw + left) * f)), int(np.ceil((y + bh + top) * f))
        x0, y0 = min(max(x0, 0), size - 1), min(max(y0, 0), size - 1)
        x1, y1 = min(max(x1, x0 + 1), size), min(max(y1, y0 + 1), size)
        m = out.setdefault(str(b["label"]), np.zeros((size, size), bool))
        m[y0:y1, x0:x1] = True
    return out
