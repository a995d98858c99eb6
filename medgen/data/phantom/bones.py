"""Bones of the phantom: posterior and anterior ribs, clavicles, thoracic spine, humeral heads.

Each bone is drawn only over its bounding rows/columns of the target grid with a tube profile whose cortex
projects brighter than the medulla, so rib edges stay sharp at 2048 pixels.
"""

from __future__ import annotations

import numpy as np

from medgen.data.phantom.anatomy import SIGN, Anatomy

N_RIBS = 10


def tube_profile(r: np.ndarray) -> np.ndarray:
    """Projected thickness of a hollow-ish bone at normalised distance ``r`` from its axis (bright cortex)."""
    r2 = r * r
    return np.sqrt(np.clip(1.0 - r2, 0.0, None)) - 0.65 * np.sqrt(np.clip(0.62 - r2, 0.0, None))


def draw_curve_band(
    img: np.ndarray,
    x0: float,
    x1: float,
    centre,
    half: float,
    density: float,
    fade: tuple[float, float] = (0.0, 0.0),
) -> None:
    """Add a band around the curve ``y = centre(x)`` for ``x0 <= x <= x1`` (normalised) into ``img``.

    ``half`` is the half thickness perpendicular to the curve; ``fade`` fades the two ends over that fraction
    of the length (rib ends blend into cartilage and soft tissue).
    """
    n = img.shape[0]
    lo, hi = max(0, int(np.floor(min(x0, x1) * n))), min(n, int(np.ceil(max(x0, x1) * n)) + 1)
    if hi <= lo:
        return
    xs = (np.arange(lo, hi) + 0.5) / n
    yc = centre(xs)
    slope = np.gradient(yc, xs) if xs.size > 1 else np.zeros_like(xs)
    hv = half * np.sqrt(1.0 + slope * slope)
    r0 = max(0, int(np.floor((yc - hv).min() * n)) - 1)
    r1 = min(n, int(np.ceil((yc + hv).max() * n)) + 2)
    if r1 <= r0:
        return
    ys = (np.arange(r0, r1) + 0.5) / n
    r = (ys[:, None] - yc[None, :]) / hv[None, :]
    frac = (xs - min(x0, x1)) / abs(x1 - x0)
    w = np.ones_like(xs)
    if fade[0] > 0:
        w *= np.clip(frac / fade[0], 0.0, 1.0)
    if fade[1] > 0:
        w *= np.clip((1.0 - frac) / fade[1], 0.0, 1.0)
    img[r0:r1, lo:hi] += (density * tube_profile(r) * w[None, :]).astype(img.dtype)


def draw_ribs(img: np.ndarray, an: Anatomy) -> None:
    """Ten posterior ribs (arching laterally) and their anterior ends (descending medially) per side."""
    for i in range(2):
        sgn, w = SIGN[i], an.half_width[i]
        for k in range(N_RIBS):
            yk = an.rib_first + k * an.rib_spacing
            u_end = w + 0.022

            def post(u, yk=yk, w=w):
                return yk - an.rib_rise * u + an.rib_drop * (u / w) ** 3

            y_lat = float(post(np.asarray(u_end)))
            half = an.rib_half * (1.0 + 0.02 * k)

            def post_x(x, sgn=sgn, post=post):
                return post(sgn * (x - an.cx))

            xa, xb = an.cx + sgn * 0.028, an.cx + sgn * u_end
            draw_curve_band(
                img, min(xa, xb), max(xa, xb), post_x, half, 2.3, fade=(0.15, 0.0) if sgn > 0 else (0.0, 0.15)
            )

            def ant_x(x, sgn=sgn, y_lat=y_lat, u_end=u_end):
                d = u_end - sgn * (x - an.cx)
                return y_lat + an.ant_rib_slope * d + 0.25 * d * d

            xc, xd = an.cx + sgn * 0.10, an.cx + sgn * (u_end + 0.004)
            draw_curve_band(
                img,
                min(xc, xd),
                max(xc, xd),
                ant_x,
                half * 1.15,
                1.2,
                fade=(0.35, 0.0) if sgn > 0 else (0.0, 0.35),
            )


def draw_clavicles(img: np.ndarray, an: Anatomy) -> None:
    for i in range(2):
        sgn = SIGN[i]
        u0, u1 = 0.035, 0.34

        def cl(x, sgn=sgn, u0=u0, u1=u1):
            u = sgn * (x - an.cx)
            f = (u - u0) / (u1 - u0)
            return an.clavicle_y + 0.012 - an.clavicle_tilt * f + 0.010 * np.sin(2 * np.pi * f)

        xa, xb = an.cx + sgn * u0, an.cx + sgn * u1
        draw_curve_band(
            img, min(xa, xb), max(xa, xb), cl, 0.0095, 2.6, fade=(0.0, 0.05) if sgn > 0 else (0.05, 0.0)
        )


def draw_spine(img: np.ndarray, an: Anatomy) -> None:
    """Thoracic vertebrae: bodies with end plates and disc spaces, pedicles as cortical rings."""
    n = img.shape[0]
    half_w = 0.032
    lo, hi = max(0, int((an.cx - 0.05) * n)), min(n, int((an.cx + 0.05) * n) + 1)
    xs = (np.arange(lo, hi) + 0.5) / n
    ys = (np.arange(n) + 0.5) / n
    phase = ((ys - an.rib_first + 0.01) / an.vertebra_height) % 1.0
    body_x = np.sqrt(np.clip(1.0 - ((xs - an.cx) / half_w) ** 2, 0.0, None))
    disc = np.clip(np.minimum(phase, 1.0 - phase) / 0.09, 0.0, 1.0)  # 0 in the disc space
    endplate = 1.0 + 0.35 * np.exp(-(((np.minimum(phase, 1.0 - phase) - 0.10) / 0.03) ** 2))
    col = 1.3 * (0.55 + 0.45 * disc) * endplate
    spine = col[:, None] * body_x[None, :]
    ped_r = 0.22  # pedicle radius as a fraction of the vertebra height
    for sgn in (-1.0, 1.0):
        dx = (xs - (an.cx + sgn * 0.024)) / (0.45 * half_w)
        dy = (phase - 0.35) / ped_r
        r = np.sqrt(dx[None, :] ** 2 + dy[:, None] ** 2)
        spine += 0.8 * np.exp(-(((r - 0.8) / 0.18) ** 2))
    taper = np.clip((ys - (an.y_apex - 0.1)) / 0.1, 0.0, 1.0)[:, None]
    img[:, lo:hi] += (spine * taper).astype(img.dtype)


def draw_humeral_heads(img: np.ndarray, an: Anatomy) -> None:
    n = img.shape[0]
    for sgn in (-1.0, 1.0):
        hx, hy, r = an.cx + sgn * (an.body_half_width + 0.015), an.shoulder_y + 0.05, 0.07
        lo, hi = max(0, int((hx - r) * n)), min(n, int((hx + r) * n) + 1)
        r0, r1 = max(0, int((hy - r) * n)), min(n, int((hy + r) * n) + 1)
        if hi <= lo or r1 <= r0:
            continue
        xs = (np.arange(lo, hi) + 0.5) / n
        ys = (np.arange(r0, r1) + 0.5) / n
        d = np.sqrt((xs[None, :] - hx) ** 2 + (ys[:, None] - hy) ** 2) / r
        img[r0:r1, lo:hi] += (2.0 * tube_profile(d)).astype(img.dtype)


def bone_map(n: int, an: Anatomy) -> np.ndarray:
    """Water-equivalent bone thickness (cm) on an ``n`` x ``n`` grid."""
    img = np.zeros((n, n), dtype=np.float32)
    draw_spine(img, an)
    draw_ribs(img, an)
    draw_clavicles(img, an)
    draw_humeral_heads(img, an)
    return img
