"""Metrics for generated images: FID, KID, intra-prompt MS-SSIM diversity and a memorisation check.

The distribution metrics work on feature vectors, ``(N, D)``, from whatever extractor the evaluation uses
(an ImageNet Inception, a chest X-ray classifier): numbers are comparable only with the same extractor, the same
preprocessing and, for FID, the same number of images. Every function accepts numpy arrays or torch tensors,
computes in float64 and returns plain Python floats or numpy arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.metrics import MultiScaleSSIMMetric
from scipy.stats import mannwhitneyu

#: Wang et al. (2003) scale weights, finest first: MONAI's ``MultiScaleSSIMMetric`` default.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
RANGE_TOLERANCE = 1e-3


def _features(x: Any, name: str) -> np.ndarray:
    """``x`` as a finite float64 ``(N, D)`` array, or a ValueError naming ``name`` and its shape."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected features of shape (N, D), got {x.shape}.")
    if not np.isfinite(x).all():
        raise ValueError(f"{name}: features of shape {x.shape} contain NaN or infinite values.")
    return x


def _pair(real: Any, fake: Any, names: tuple[str, str], min_n: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = _features(real, names[0]), _features(fake, names[1])
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{names[0]} {a.shape} and {names[1]} {b.shape} have different feature sizes (D).")
    for arr, n in zip((a, b), names):
        if arr.shape[0] < min_n:
            raise ValueError(f"{n}: needs at least {min_n} feature vectors, got shape {arr.shape}.")
    return a, b


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(m)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(real_feats: Any, fake_feats: Any) -> float:
    """Fréchet (Inception) distance between two ``(N, D)`` feature sets; 0 for identical statistics.

    ``|mu_r - mu_f|^2 + tr(S_r + S_f - 2 (S_r S_f)^(1/2))`` with unbiased (``N - 1``) covariances. FID is biased
    upwards for finite N, by an amount that depends on N and D (Chong & Forsyth, 2020): compare FIDs only at the
    same N (10k or 50k images is common; a few hundred images give large, extractor-specific offsets). With
    ``N <= D`` the covariances are singular; the value is still defined but dominated by that bias.
    """
    # MONAI's FIDMetric (checked on 1.6.1) gives the same value (it casts to float64 itself) but is not used:
    # scipy.linalg.sqrtm of the non-symmetric S_r S_f is 3-4x slower at D=2048 and ~40 s when N < D (singular
    # product), returns small negative values for identical sets, fails for D=1 and passes sqrtm's `disp`
    # argument, deprecated in SciPy 1.16 and removed in 1.18. tr((S_r S_f)^(1/2)) is the sum of the square roots
    # of the eigenvalues of the symmetric PSD matrix S_r^(1/2) S_f S_r^(1/2), which eigh computes stably.
    real, fake = _pair(real_feats, fake_feats, ("real_feats", "fake_feats"), min_n=2)
    mu_r, mu_f = real.mean(0), fake.mean(0)
    cov_r = np.atleast_2d(np.cov(real, rowvar=False))
    cov_f = np.atleast_2d(np.cov(fake, rowvar=False))
    root_r = _sqrt_psd(cov_r)
    inner = root_r @ cov_f @ root_r
    eig = np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0.0, None)
    value = float(((mu_r - mu_f) ** 2).sum() + np.trace(cov_r) + np.trace(cov_f) - 2.0 * np.sqrt(eig).sum())
    return max(value, 0.0)  # rounding can leave ~-1e-9 for identical sets; FID is >= 0


def _polynomial_mmd2(x: np.ndarray, y: np.ndarray, degree: int, gamma: float, coef0: float) -> float:
    """Unbiased MMD^2 with ``k(a, b) = (gamma <a, b> + coef0)^degree``, for ``x``, ``y`` of the same size m."""
    m = x.shape[0]
    k_xx = (gamma * x @ x.T + coef0) ** degree
    k_yy = (gamma * y @ y.T + coef0) ** degree
    k_xy = (gamma * x @ y.T + coef0) ** degree
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / m**2)


def kernel_inception_distance(
    real_feats: Any,
    fake_feats: Any,
    subsets: int = 10,
    subset_size: int | None = None,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1,
    seed: int = 0,
) -> dict[str, float | int]:
    """Kernel Inception Distance (Bińkowski et al., 2018): unbiased MMD^2, cubic polynomial kernel.

    As torchmetrics and clean-fid compute it: for each of ``subsets`` rounds, ``subset_size`` real and fake
    vectors are drawn without replacement (independently per round) and the unbiased MMD^2 of the two draws is
    taken with ``k(a, b) = (gamma <a, b> + coef0)^degree``, ``gamma = 1 / D`` by default. Unbiased, so the
    expected value is 0 for one distribution and single rounds may be negative; usable at small N, unlike FID.

    Args:
        real_feats, fake_feats: ``(N_real, D)`` and ``(N_fake, D)`` features.
        subsets: number of random rounds.
        subset_size: vectors per round from each set; default ``min(N_real, N_fake, 1000)``.
        degree, gamma, coef0: the polynomial kernel.
        seed: seed of the subset draws (numpy ``default_rng``).

    Returns:
        ``mean`` and ``std`` (population std, ``ddof=0``, as torchmetrics reports it) of MMD^2 over the rounds,
        and the ``subsets`` and ``subset_size`` used. The std shows the spread of the subset estimates, not a
        standard error: rounds share images.
    """
    # MONAI's MMDMetric is not KID: it compares paired images directly in image space with a linear kernel.
    real, fake = _pair(real_feats, fake_feats, ("real_feats", "fake_feats"), min_n=1)
    n_max = min(real.shape[0], fake.shape[0])
    if subset_size is None:
        subset_size = min(n_max, 1000)
    if subset_size < 2 or subset_size > n_max:
        raise ValueError(
            f"subset_size={subset_size} must be between 2 and min(N_real, N_fake) = {n_max} "
            f"(real_feats {real.shape}, fake_feats {fake.shape})."
        )
    if subsets < 1:
        raise ValueError(f"subsets={subsets} must be >= 1.")
    if degree < 1:
        raise ValueError(f"degree={degree} must be >= 1.")
    gamma = 1.0 / real.shape[1] if gamma is None else float(gamma)
    rng = np.random.default_rng(seed)
    scores = np.empty(subsets)
    for i in range(subsets):
        x = real[rng.choice(real.shape[0], subset_size, replace=False)]
        y = fake[rng.choice(fake.shape[0], subset_size, replace=False)]
        scores[i] = _polynomial_mmd2(x, y, degree, gamma, coef0)
    return {
        "mean": float(scores.mean()),
        "std": float(scores.std()),
        "subsets": int(subsets),
        "subset_size": int(subset_size),
    }


def ms_ssim_min_size(kernel_size: int, n_scales: int) -> int:
    """Smallest image side that MONAI's MS-SSIM accepts for ``kernel_size`` and ``n_scales`` scales.

    Two conditions: the coarsest scale (``side // 2**(n_scales - 1)``) must hold one kernel, and MONAI's own check
    ``side // max(1, n_scales - 1)**2 > kernel_size - 1``. (Its error message names ``(kernel_size - 1) *
    (n_scales - 1)**2``, e.g. 160 for the defaults, but the smallest accepted side is 176.)
    """
    return kernel_size * max(2 ** (n_scales - 1), max(1, n_scales - 1) ** 2)


def _ms_ssim_weights(side: int, kernel_size: int, weights: Sequence[float] | None) -> tuple[float, ...]:
    if weights is not None:
        weights = tuple(float(w) for w in weights)
        if not weights:
            raise ValueError("weights must name at least one scale.")
        need = ms_ssim_min_size(kernel_size, len(weights))
        if side < need:
            raise ValueError(
                f"MS-SSIM with {len(weights)} scales and kernel_size={kernel_size} needs images of at least "
                f"{need}x{need} pixels, got a smallest side of {side}: use fewer weights or a smaller kernel_size."
            )
        return weights
    n_scales = len(MS_SSIM_WEIGHTS)
    while n_scales > 2 and ms_ssim_min_size(kernel_size, n_scales) > side:
        n_scales -= 1
    need = ms_ssim_min_size(kernel_size, n_scales)
    if side < need:
        raise ValueError(
            f"MS-SSIM with kernel_size={kernel_size} needs images of at least {need}x{need} pixels (2 scales), "
            f"got a smallest side of {side}: use a smaller kernel_size."
        )
    head = MS_SSIM_WEIGHTS[:n_scales]
    return tuple(w / sum(head) for w in head)


def ms_ssim_diversity(
    images: Any,
    groups: Sequence[Any],
    kernel_size: int = 11,
    kernel_sigma: float = 1.5,
    weights: Sequence[float] | None = None,
    batch_size: int = 256,
) -> dict[str, Any]:
    """Intra-prompt diversity: mean MS-SSIM over all pairs of images generated from the same prompt.

    Lower is more diverse: 1 means the images of a prompt are identical (collapse), values near 0 mean they share
    no structure. Pairs never cross groups; a group with one image contributes none. Chest X-rays of one prompt
    share anatomy, so expect values well above those of natural-image benchmarks; compare models at the same
    image size and settings, and against the same statistic on real images of one finding.

    Args:
        images: ``(N, C, H, W)`` in [0, 1] (typically ``C = 1``), numpy or torch.
        groups: ``N`` group ids, e.g. the prompt index of each image (typically 4 images per prompt).
        kernel_size, kernel_sigma: the Gaussian SSIM window (Wang et al.: 11, 1.5).
        weights: scale weights, finest first. Default: MONAI's five standard weights, keeping as many leading
            scales as the image size allows with ``kernel_size`` (at least 2), renormalised to sum 1: 5 scales
            from 176 px, 4 from 99 px, 3 from 44 px (e.g. 64x64 images), 2 from 22 px; smaller is a ValueError.
        batch_size: pairs scored per MONAI call.

    Returns:
        ``mean`` and ``std`` (``ddof=0``) over all pairs, ``n_pairs``, and the ``weights`` used.
    """
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor):
        images = torch.as_tensor(np.asarray(images))
    if images.ndim != 4:
        raise ValueError(f"images: expected (N, C, H, W), got {tuple(images.shape)}.")
    group_ids = np.asarray(groups.detach().cpu() if isinstance(groups, torch.Tensor) else groups)
    if group_ids.ndim != 1 or len(group_ids) != images.shape[0]:
        raise ValueError(
            f"groups: expected one id per image, {images.shape[0]} for images {tuple(images.shape)}, "
            f"got shape {group_ids.shape}."
        )
    images = images.detach().float()
    lo, hi = float(images.min()), float(images.max())
    if lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        raise ValueError(
            f"images: values span [{lo:.4g}, {hi:.4g}]; MS-SSIM here uses data_range=1 on [0, 1]."
        )
    scale_weights = _ms_ssim_weights(min(images.shape[-2:]), kernel_size, weights)

    first: list[int] = []
    second: list[int] = []
    for gid in np.unique(group_ids):
        members = np.flatnonzero(group_ids == gid)
        i, j = np.triu_indices(len(members), k=1)
        first.extend(members[i].tolist())
        second.extend(members[j].tolist())
    if not first:
        raise ValueError("groups: no group has two or more images, so there are no pairs to compare.")

    metric = MultiScaleSSIMMetric(
        spatial_dims=2,
        data_range=1.0,
        kernel_size=kernel_size,
        kernel_sigma=kernel_sigma,
        weights=scale_weights,
        reduction="none",
    )
    scores = []
    with torch.no_grad():
        for start in range(0, len(first), batch_size):
            a = images[first[start : start + batch_size]]
            b = images[second[start : start + batch_size]]
            scores.append(metric(y_pred=a, y=b).reshape(-1).double().cpu())
            metric.reset()
    values = torch.cat(scores).numpy()
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "n_pairs": int(values.size),
        "weights": scale_weights,
    }


def nearest_neighbour_distances(
    query_feats: Any,
    reference_feats: Any,
    metric: str = "cosine",
    exclude_self: bool = False,
    batch_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Distance from each query vector to its nearest reference vector, and that reference's index.

    For the memorisation check: generated-to-training and held-out-to-training distances, in the same feature
    space, go to :func:`memorisation_summary`. Queries are processed ``batch_size`` at a time, so memory is
    ``batch_size x N_reference`` distances (10k x 10k takes ~80 MB at a time, not 800 MB).

    Args:
        query_feats: ``(N, D)``.
        reference_feats: ``(M, D)``.
        metric: ``"cosine"`` (``1 - cos``, in [0, 2]) or ``"l2"`` (Euclidean).
        exclude_self: query ``i`` and reference ``i`` are the same item (``N == M``; e.g. the training set
            against itself), so reference ``i`` is never the neighbour of query ``i``. Exact duplicates at other
            indices still count.
        batch_size: queries per block.

    Returns:
        ``distances`` (float64, ``(N,)``) and ``indices`` (int64, ``(N,)``) into the reference set.
    """
    if metric not in ("cosine", "l2"):
        raise ValueError(f"metric={metric!r} is not one of 'cosine', 'l2'.")
    query, ref = _pair(query_feats, reference_feats, ("query_feats", "reference_feats"), min_n=1)
    if exclude_self:
        if query.shape[0] != ref.shape[0]:
            raise ValueError(
                f"exclude_self=True pairs query i with reference i, but query_feats {query.shape} and "
                f"reference_feats {ref.shape} differ in N."
            )
        if ref.shape[0] < 2:
            raise ValueError(f"exclude_self=True needs at least 2 reference vectors, got {ref.shape}.")
    if metric == "cosine":
        for arr, name in ((query, "query_feats"), (ref, "reference_feats")):
            norms = np.linalg.norm(arr, axis=1)
            if (norms == 0).any():
                raise ValueError(
                    f"{name} {arr.shape}: rows {np.flatnonzero(norms == 0)[:5].tolist()} have zero norm, "
                    "which has no cosine distance; use metric='l2'."
                )
        query = query / np.linalg.norm(query, axis=1, keepdims=True)
        ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    ref_sq = (ref**2).sum(1)
    distances = np.empty(query.shape[0])
    indices = np.empty(query.shape[0], dtype=np.int64)
    for start in range(0, query.shape[0], batch_size):
        q = query[start : start + batch_size]
        dots = q @ ref.T
        if metric == "cosine":
            block = 1.0 - dots
        else:
            block = (q**2).sum(1, keepdims=True) + ref_sq[None, :] - 2.0 * dots
        if exclude_self:
            rows = np.arange(q.shape[0])
            block[rows, start + rows] = np.inf
        best = block.argmin(1)
        indices[start : start + q.shape[0]] = best
        distances[start : start + q.shape[0]] = block[np.arange(q.shape[0]), best]
    if metric == "cosine":
        return np.clip(distances, 0.0, 2.0), indices
    return np.sqrt(np.clip(distances, 0.0, None)), indices


def _distances(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or x.size < 2:
        raise ValueError(f"{name}: expected a 1-D array of at least 2 distances, got shape {x.shape}.")
    if not np.isfinite(x).all():
        raise ValueError(f"{name}: distances of shape {x.shape} contain NaN or infinite values.")
    return x


def memorisation_summary(gen_to_train: Any, heldout_to_train: Any) -> dict[str, float | int]:
    """Compare generated-to-training nearest-neighbour distances with the held-out-to-training baseline.

    Held-out real images are as close to the training set as unseen images of the same distribution get; a
    model that copies training images puts its samples closer than that. How to read the result:

    - ``share_below_heldout_p5``: the share of generated images closer to their nearest training image than
      the 5th percentile of held-out distances. About 0.05 when generated images are as novel as held-out ones;
      well above 0.05 flags near-copies (look at those pairs); the images themselves are the evidence.
    - ``gen_median`` vs ``heldout_median`` (and the 5th percentiles ``gen_p5``, ``heldout_p5``): a generated
      median far below the held-out one means samples sit systematically on training images.
    - ``p_value``: one-sided Mann-Whitney U test (``alternative="less"``) that generated distances are
      stochastically smaller than held-out ones. Small means "closer than held-out"; with thousands of images
      tiny, harmless shifts are significant too, so read it with the share and medians, never alone. A large p
      does not rule out a few copies: the share and the smallest distances catch those.

    Distances depend on the feature extractor, so both arrays must come from the same extractor and metric,
    against the same training set (:func:`nearest_neighbour_distances`).

    Returns:
        ``gen_median``, ``heldout_median``, ``gen_p5``, ``heldout_p5``, ``share_below_heldout_p5``,
        ``mannwhitney_u``, ``p_value``, ``n_gen``, ``n_heldout``.
    """
    gen = _distances(gen_to_train, "gen_to_train")
    held = _distances(heldout_to_train, "heldout_to_train")
    held_p5 = float(np.percentile(held, 5))
    test = mannwhitneyu(gen, held, alternative="less")
    return {
        "gen_median": float(np.median(gen)),
        "heldout_median": float(np.median(held)),
        "gen_p5": float(np.percentile(gen, 5)),
        "heldout_p5": held_p5,
        "share_below_heldout_p5": float((gen < held_p5).mean()),
        "mannwhitney_u": float(test.statistic),
        "p_value": float(test.pvalue),
        "n_gen": int(gen.size),
        "n_heldout": int(held.size),
    }
