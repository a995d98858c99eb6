"""Texture of the phantom: pulmonary vessel trees, parenchymal and trabecular noise, line splatting.

Noise is generated on the target pixel grid with physical length scales (millimetres), so a 1024-pixel
render carries detail that a 256-pixel render of the same patient averages away, as a real detector would.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import fft as sp_fft
from scipy import ndimage

from medgen.data.phantom.anatomy import SIGN, Anatomy


# --- vessel trees ------------------------------------------------------------------------------------------
def vessel_tree(rng: np.random.Generator, levels: int = 7) -> list[np.ndarray]:
    """Branching pulmonary vessel trees relative to each hilum, one array per side.

    Rows are segments ``(dx0, dy0, dx1, dy1, diameter_mm)`` with dx measured outward (multiply by the side's
    image direction). Each branch splits in two with a smaller diameter and length (Murray-like taper), so
    vessels thin out toward the periphery.
    """
    trees = []
    for _side in range(2):
        roots = np.deg2rad(np.array([-80.0, -45.0, -10.0, 25.0, 60.0, 95.0]) + rng.uniform(-8, 8, 6))
        ang = roots
        x0 = np.zeros_like(ang)
        y0 = np.zeros_like(ang)
        length = rng.uniform(0.055, 0.08, ang.size)
        diam = rng.uniform(7.0, 10.0, ang.size)
        segs = []
        for _level in range(levels + 1):
            x1 = x0 + length * np.cos(ang)
            y1 = y0 + length * np.sin(ang)
            segs.append(np.stack([x0, y0, x1, y1, diam], axis=1))
            k = ang.size
            spread = np.deg2rad(rng.uniform(16.0, 34.0, (k, 2)))
            bias = np.deg2rad(rng.uniform(-6.0, 6.0, (k, 1)))
            ang = (ang[:, None] + np.stack([-spread[:, 0], spread[:, 1]], axis=1) + bias).ravel()
            ang = np.clip(ang, np.deg2rad(-115.0), np.deg2rad(125.0))  # keep branches heading into the lung
            x0, y0 = np.repeat(x1, 2), np.repeat(y1, 2)
            length = np.repeat(length, 2) * rng.uniform(0.76, 0.9, 2 * k)
            diam = np.repeat(diam, 2) * rng.uniform(0.76, 0.84, 2 * k)
        trees.append(np.concatenate(segs, axis=0).astype(np.float32))
    return trees


def place_trees(an: Anatomy, trees: list[np.ndarray]) -> np.ndarray:
    """Vessel segments in image coordinates for this study's hila."""
    out = []
    for side, tree in enumerate(trees):
        hx, hy = an.hila[side]
        seg = tree.copy()
        seg[:, 0] = hx + SIGN[side] * tree[:, 0]
        seg[:, 2] = hx + SIGN[side] * tree[:, 2]
        seg[:, 1] += hy
        seg[:, 3] += hy
        out.append(seg)
    return np.concatenate(out, axis=0)


def splat(n: int, x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Bilinear deposit of weights at normalised points onto an ``n`` x ``n`` grid (mass conserving)."""
    px, py = x * n - 0.5, y * n - 0.5
    x0, y0 = np.floor(px).astype(np.int64), np.floor(py).astype(np.int64)
    fx, fy = px - x0, py - y0
    xi = np.concatenate([x0, x0 + 1, x0, x0 + 1])
    yi = np.concatenate([y0, y0, y0 + 1, y0 + 1])
    wt = np.concatenate([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy]) * np.tile(w, 4)
    ok = (xi >= 0) & (xi < n) & (yi >= 0) & (yi < n)
    return np.bincount(yi[ok] * n + xi[ok], weights=wt[ok], minlength=n * n).reshape(n, n).astype(np.float32)


def draw_lines(n: int, segs: np.ndarray, spacing_mm: float, peak_cm_per_mm: float = 0.14) -> np.ndarray:
    """Render tubes (segments with diameters in mm) as projected thickness in cm on an ``n`` grid.

    Points along each segment are splatted into bins of similar width and each bin is blurred with its own
    Gaussian; wide bins are blurred on a 4x coarser grid (they hold no fine detail), which keeps a 2048 render
    fast. Tubes thinner than a pixel keep their integrated density (pixel averaging).
    """
    x0, y0, x1, y1, d = (segs[:, k].astype(np.float64) for k in range(5))
    seg_len_px = np.hypot(x1 - x0, y1 - y0) * n
    step = 1.0
    counts = np.maximum(1, np.ceil(seg_len_px / step)).astype(np.int64)
    idx = np.repeat(np.arange(segs.shape[0]), counts)
    start = np.cumsum(counts) - counts
    t = (np.arange(idx.size) - start[idx] + 0.5) / counts[idx]
    px = x0[idx] + t * (x1 - x0)[idx]
    py = y0[idx] + t * (y1 - y0)[idx]
    sigma_px = d[idx] / spacing_mm / 2.5
    step_px = (seg_len_px / counts)[idx]
    mass = peak_cm_per_mm * d[idx] * math.sqrt(2.0 * math.pi) * np.maximum(sigma_px, 0.5) * step_px
    level = np.clip(np.round(np.log2(np.maximum(sigma_px, 1e-3))), -1, 6).astype(np.int64)
    out = np.zeros((n, n), dtype=np.float32)
    coarse_n = max(8, n // 4)
    coarse = np.zeros((coarse_n, coarse_n), dtype=np.float32)
    for lv in np.unique(level):
        sel = level == lv
        if lv <= 1:
            img = splat(n, px[sel], py[sel], mass[sel])
            if lv >= 0:
                img = ndimage.gaussian_filter(img, 2.0**lv, truncate=3.0)
            out += img
        else:
            img = splat(coarse_n, px[sel], py[sel], mass[sel] * (coarse_n / n) ** 2)
            coarse += ndimage.gaussian_filter(img, 2.0**lv * coarse_n / n, truncate=3.0)
    if coarse.any():
        out += resize(coarse, n)
    return out


def _axis_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0, n_in - 1.0)
    i0 = np.minimum(pos.astype(np.int64), n_in - 2) if n_in > 1 else np.zeros(n_out, dtype=np.int64)
    return i0, np.minimum(i0 + 1, n_in - 1), (pos - i0).astype(np.float32)


def resize(field: np.ndarray, n: int) -> np.ndarray:
    """Separable linear resampling of a smooth square field to ``n`` x ``n`` with pixel-centre alignment.

    Hand-written rather than ``scipy.ndimage.zoom`` because two gathers are ~5x faster for this one case.
    """
    field = field.astype(np.float32, copy=False)
    if field.shape[0] == n:
        return field
    i0, i1, w = _axis_weights(field.shape[1], n)
    rows = field[:, i0] * (1.0 - w) + field[:, i1] * w
    i0, i1, w = _axis_weights(field.shape[0], n)
    return rows[i0] * (1.0 - w[:, None]) + rows[i1] * w[:, None]


# --- noise fields --------------------------------------------------------------------------------------------
def power_law_noise(
    rng: np.random.Generator, n: int, spacing_mm: float, beta: float = 1.6, corner_mm: float = 40.0
) -> np.ndarray:
    """Gaussian noise with power spectrum ~ (f^2 + f0^2)^-beta in physical frequency (cycles/mm).

    White noise is scaled by 1/spacing so that the field's statistics are those of one continuous process
    sampled at the pixel size: finer grids add high frequencies instead of changing the texture.
    """
    z = rng.standard_normal((n, n), dtype=np.float32) / spacing_mm
    spec = sp_fft.rfft2(z, workers=1)
    fy = sp_fft.fftfreq(n, d=spacing_mm).astype(np.float32)[:, None]
    fx = sp_fft.rfftfreq(n, d=spacing_mm).astype(np.float32)[None, :]
    f0 = 1.0 / corner_mm
    spec *= (fx * fx + fy * fy + f0 * f0) ** (-beta / 2.0) * f0 ** (beta - 1.0)
    return sp_fft.irfft2(spec, s=(n, n), workers=1).astype(np.float32)


def fine_noise(rng: np.random.Generator, n: int, spacing_mm: float, corr_mm: float) -> np.ndarray:
    """Unit-variance-at-fine-scale texture with correlation length ``corr_mm``, pixel-averaged.

    On grids coarser than the texture the pixel average has a smaller variance (std ~ corr/spacing), which is
    what averaging a real trabecular pattern over a large pixel does.
    """
    z = rng.standard_normal((n, n), dtype=np.float32)
    sig = corr_mm / spacing_mm
    if sig >= 0.35:
        z = ndimage.gaussian_filter(z, sig, truncate=3.0)
        z /= max(float(z.std()), 1e-6)
    return z * min(1.0, 2.0 * corr_mm / spacing_mm)


def lattice_noise(rng: np.random.Generator, cells: int = 6) -> np.ndarray:
    """A small random lattice, evaluated later by :func:`eval_lattice` at any resolution."""
    return rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)


def eval_lattice(lat: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Smooth (C1) interpolation of a lattice at local coordinates ``u`` (columns) and ``v`` (rows) in [0, 1].

    ``u`` and ``v`` broadcast (e.g. a row and a column vector), so shapes from a finding's lattice look the
    same at every pixel size.
    """
    c = lat.shape[0] - 1
    gu, gv = np.clip(u, 0.0, 1.0) * c, np.clip(v, 0.0, 1.0) * c
    iu, iv = np.minimum(gu.astype(np.int64), c - 1), np.minimum(gv.astype(np.int64), c - 1)
    fu, fv = gu - iu, gv - iv
    fu, fv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)
    a = lat[iv, iu] * (1 - fu) + lat[iv, iu + 1] * fu
    b = lat[iv + 1, iu] * (1 - fu) + lat[iv + 1, iu + 1] * fu
    return (a * (1 - fv) + b * fv).astype(np.float32)
