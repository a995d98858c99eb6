"""Multi-label classification metrics that can carry a claim: per-class AUROC with bootstrap CIs, and accuracy
only beside the all-negative baseline.

Why not accuracy alone: with ~5-10% label prevalence, predicting "no finding" everywhere already scores ~90-95%
element-wise accuracy (NIH ChestX-ray14: 94.8%), so a 96% -> 98% accuracy change says little. AUROC is
threshold-free and prevalence-independent; the bootstrap CI shows whether two models differ beyond resampling
noise. AUROC is computed here by ranks (Mann-Whitney U, ties averaged), vectorised over classes, because MONAI's
``compute_roc_auc`` loops in Python per sample and the bootstrap needs thousands of evaluations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

__all__ = [
    "all_negative_baseline",
    "auroc_per_class",
    "bootstrap_auroc",
    "classification_report",
    "f1_per_class",
    "multilabel_accuracy",
    "region_image_quality",
]


def _as_2d(a: Any, name: str) -> np.ndarray:
    arr = np.asarray(a.detach().cpu() if hasattr(a, "detach") else a, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be (N, C), got shape {arr.shape}")
    return arr


def _check(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray]:
    t, s = _as_2d(y_true, "y_true"), _as_2d(y_score, "y_score")
    if t.shape != s.shape:
        raise ValueError(f"y_true {t.shape} and y_score {s.shape} must have the same (N, C) shape")
    if not np.isin(t, (0, 1)).all():
        raise ValueError(
            "y_true must hold only 0/1 labels (uncertain labels must be mapped before evaluation)"
        )
    return t, s


def auroc_per_class(y_true: Any, y_score: Any) -> np.ndarray:
    """(C,) AUROC per class; NaN for a class whose labels are all 0 or all 1 (AUROC undefined there)."""
    t, s = _check(y_true, y_score)
    ranks = rankdata(s, axis=0)  # average ranks for ties
    n_pos = t.sum(0)
    n_neg = t.shape[0] - n_pos
    u = (ranks * t).sum(0) - n_pos * (n_pos + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = u / (n_pos * n_neg)
    auc[(n_pos == 0) | (n_neg == 0)] = np.nan
    return auc


def bootstrap_auroc(
    y_true: Any,
    y_score: Any,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    groups: Sequence[Any] | None = None,
) -> dict[str, np.ndarray]:
    """Percentile bootstrap CI of per-class AUROC and of the mean AUROC.

    Args:
        groups: optional patient id per row; resampling then draws patients (with all their images), which is
            the right unit when one patient contributes several images.

    Returns:
        ``auroc`` (C,), ``lo``/``hi`` (C,), ``mean_auroc``/``mean_lo``/``mean_hi`` (scalars) and ``n_valid``
        (C,): resamples in which the class had both labels (the rest cannot define AUROC and are counted, not
        hidden).
    """
    t, s = _check(y_true, y_score)
    rng = np.random.default_rng(seed)
    if groups is None:
        units = [np.array([i]) for i in range(t.shape[0])]
    else:
        if len(groups) != t.shape[0]:
            raise ValueError(f"groups has {len(groups)} entries for {t.shape[0]} rows")
        _, inv = np.unique(np.asarray(groups), return_inverse=True)
        units = [np.flatnonzero(inv == g) for g in range(inv.max() + 1)]
    boots = np.empty((n_boot, t.shape[1]))
    for b in range(n_boot):
        pick = rng.integers(0, len(units), len(units))
        idx = np.concatenate([units[i] for i in pick])
        boots[b] = auroc_per_class(t[idx], s[idx])
    alpha = (1 - ci) / 2
    with np.errstate(invalid="ignore"):
        lo = np.nanquantile(boots, alpha, axis=0)
        hi = np.nanquantile(boots, 1 - alpha, axis=0)
        means = np.nanmean(boots, axis=1)
    auc = auroc_per_class(t, s)
    return {
        "auroc": auc,
        "lo": lo,
        "hi": hi,
        "n_valid": np.isfinite(boots).sum(0),
        "mean_auroc": float(np.nanmean(auc)),
        "mean_lo": float(np.nanquantile(means, alpha)),
        "mean_hi": float(np.nanquantile(means, 1 - alpha)),
    }


def multilabel_accuracy(y_true: Any, y_pred: Any) -> dict[str, float]:
    """Element-wise accuracy (all N*C decisions) and exact-match accuracy (all C labels of an image right)."""
    t, p = _check(y_true, y_pred)
    return {"elementwise": float((t == p).mean()), "exact_match": float((t == p).all(1).mean())}


def all_negative_baseline(y_true: Any) -> dict[str, float]:
    """Accuracy of predicting "no finding" for every label: the floor any accuracy figure must be read against."""
    t = _as_2d(y_true, "y_true")
    return multilabel_accuracy(t, np.zeros_like(t))


def f1_per_class(y_true: Any, y_pred: Any) -> np.ndarray:
    """(C,) F1 per class at the given binary predictions; 0 where a class has no positives and no predictions."""
    t, p = _check(y_true, y_pred)
    tp = (t * p).sum(0)
    denom = t.sum(0) + p.sum(0)
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1e-12), 0.0)


def classification_report(
    y_true: Any,
    y_score: Any,
    labels: Sequence[str],
    threshold: float = 0.5,
    n_boot: int = 1000,
    seed: int = 0,
    groups: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Everything the evaluation protocol asks for, as a JSON-ready dict (``y_score`` are probabilities)."""
    t, s = _check(y_true, y_score)
    if len(labels) != t.shape[1]:
        raise ValueError(f"{len(labels)} label names for {t.shape[1]} columns")
    boot = bootstrap_auroc(t, s, n_boot=n_boot, seed=seed, groups=groups)
    pred = (s >= threshold).astype(np.float64)
    f1 = f1_per_class(t, pred)

    def num(x: float) -> float | None:
        return None if not np.isfinite(x) else float(x)

    return {
        "n_images": int(t.shape[0]),
        "n_patients": int(len(set(groups))) if groups is not None else None,
        "mean_auroc": num(boot["mean_auroc"]),
        "mean_auroc_ci95": [num(boot["mean_lo"]), num(boot["mean_hi"])],
        "per_class": {
            name: {
                "auroc": num(boot["auroc"][i]),
                "ci95": [num(boot["lo"][i]), num(boot["hi"][i])],
                "bootstrap_valid": int(boot["n_valid"][i]),
                "f1": float(f1[i]),
                "prevalence": float(t[:, i].mean()),
            }
            for i, name in enumerate(labels)
        },
        "macro_f1": float(f1.mean()),
        "accuracy": multilabel_accuracy(t, pred),
        "all_negative_accuracy": all_negative_baseline(t),
        "threshold": threshold,
        "bootstrap": {"n_boot": n_boot, "unit": "patient" if groups is not None else "image", "seed": seed},
    }


def region_image_quality(
    pred: Any, target: Any, boxes: Sequence[Any], shave: int = 4
) -> dict[str, list[float]]:
    """PSNR/SSIM (data_range 1, border shave) of each box region and of each whole image.

    Why both: a small enhanced region pasted into an otherwise unchanged image inflates whole-image PSNR by about
    ``10*log10(1/area share)`` dB, so only the region figures say how good the super-resolution is. The
    whole-image figure is computed that way (as an "enhanced vs original" comparison does): the target with its
    box regions replaced by the prediction's, against the target.

    Args:
        pred, target: (B, 1, H, W) tensors in [0, 1] at the same (high) resolution.
        boxes: per image (K, 4) (x0, y0, x1, y1) in that resolution.

    Returns:
        ``region_psnr``/``region_ssim`` (one value per box) and ``image_psnr``/``image_ssim`` (one per image
        that has at least one box).
    """
    import torch

    from medgen.metrics.image import psnr, ssim

    pred, target = torch.as_tensor(pred).float(), torch.as_tensor(target).float()
    out: dict[str, list[float]] = {"region_psnr": [], "region_ssim": [], "image_psnr": [], "image_ssim": []}
    for b, bx in enumerate(boxes):
        for x0, y0, x1, y1 in torch.as_tensor(bx).reshape(-1, 4).tolist():
            p, t = pred[b : b + 1, :, y0:y1, x0:x1], target[b : b + 1, :, y0:y1, x0:x1]
            out["region_psnr"].append(float(psnr(p, t, shave)[0]))
            out["region_ssim"].append(float(ssim(p, t, shave)[0]))
    pasted = target.clone()
    for b, bx in enumerate(boxes):
        for x0, y0, x1, y1 in torch.as_tensor(bx).reshape(-1, 4).tolist():
            pasted[b, :, y0:y1, x0:x1] = pred[b, :, y0:y1, x0:x1]
    # images without a box are identical to the target (infinite PSNR): they are left out of the image figures
    has = [b for b, bx in enumerate(boxes) if torch.as_tensor(bx).numel() > 0]
    if has:
        out["image_psnr"] = [float(v) for v in psnr(pasted[has], target[has], shave)]
        out["image_ssim"] = [float(v) for v in ssim(pasted[has], target[has], shave)]
    return out
