"""Pixel rendering of a sampled phantom study at any size from 128 to 2048.

The image is built in the log domain as water-equivalent thickness (cm): body soft tissue minus lung air,
plus bones, pulmonary vessels, findings and parenchymal texture. It is then exposed (Beer-Lambert with the
study's effective attenuation), given Poisson-like quantum noise for the pixel area, blurred by the detector
(a width in millimetres, so in pixels it grows with the size) and log-windowed to [0, 1] with bone and the
mediastinum bright and the lungs dark (MONOCHROME2 display).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from medgen.data.labels import PHANTOM_LABELS
from medgen.data.phantom import anatomy as A
from medgen.data.phantom.bones import bone_map
from medgen.data.phantom.constants import MAX_SIZE, MIN_SIZE  # noqa: E402  (re-exported)
from medgen.data.phantom.findings import PAINTERS, Finding, RenderContext
from medgen.data.phantom.study import StudySpec, rng_for, sample_study
from medgen.data.phantom.texture import (
    draw_lines,
    fine_noise,
    place_trees,
    power_law_noise,
    resize,
    vessel_tree,
)

COARSE = 256  # smooth fields (body thickness, lung depth) are computed at most at this size, then resampled


@dataclass
class PhantomSample:
    """One rendered phantom study with its ground truth."""

    image: np.ndarray  # float32 [0, 1], (H, W), MONOCHROME2 (high = dense)
    labels: np.ndarray  # float32 over PHANTOM_LABELS
    masks: dict[str, np.ndarray]  # finding -> bool (H, W); empty for absent findings
    report: dict[str, str]  # findings, impression, text
    patient_id: str
    index: int  # study index in the phantom set
    study_index: int  # 0-based study number of this patient
    ctr: float  # cardiothoracic ratio measured on the rendered heart and thorax masks
    pixel_spacing_mm: float
    lungs: np.ndarray
    heart: np.ndarray
    thorax: np.ndarray
    findings: list[Finding] = field(default_factory=list)
    view: str = "PA"
    seed: int = 0

    @property
    def size(self) -> int:
        return int(self.image.shape[0])


def check_size(size: int) -> int:
    if (
        isinstance(size, bool)
        or not isinstance(size, (int, np.integer))
        or not MIN_SIZE <= int(size) <= MAX_SIZE
    ):
        raise ValueError(
            f"phantom size={size!r} is not supported: use an integer from {MIN_SIZE} to {MAX_SIZE} pixels "
            f"(the phantom renders natively at that size; resample afterwards for other sizes)."
        )
    return int(size)


def measure_ctr(heart: np.ndarray, thorax: np.ndarray) -> float:
    """Cardiothoracic ratio: transverse extent of the heart mask over that of the thorax mask."""

    def extent(mask: np.ndarray) -> int:
        cols = np.flatnonzero(mask.any(axis=0))
        return int(cols[-1] - cols[0] + 1) if cols.size else 0

    t = extent(thorax)
    return extent(heart) / t if t else 0.0


def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    c = ((np.arange(n, dtype=np.float32) + 0.5) / n).astype(np.float32)
    return c[None, :], c[:, None]


def _soft(f: np.ndarray, n: int) -> np.ndarray:
    return np.clip(0.5 - f * n, 0.0, 1.0).astype(np.float32)


def _smooth_fields(an: A.Anatomy, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Body water-equivalent thickness and lung air depth (cm) on a coarse grid, resampled to ``n``."""
    nc = min(n, COARSE)
    x, y = _grid(nc)
    dy = np.clip(y / max(an.shoulder_y + 0.06, 1e-3), 0.0, 1.0)
    half = 0.075 + (an.body_half_width - 0.075) * (dy * dy * (3 - 2 * dy))
    half = half - 0.03 * np.clip((y - an.y_cp[0]) / 0.25, 0.0, 1.0)  # waist
    body = an.body_cm * np.sqrt(np.clip(1.0 - ((x - an.cx) / half) ** 2, 0.0, None)) ** 0.6
    body *= 0.55 + 0.45 * A.smoothstep((y - an.shoulder_y + 0.05) / 0.2)
    lung = np.zeros((nc, nc), dtype=np.float32)
    for i in range(2):
        lung = np.maximum(lung, (A.lung_field(an, i, x, y) < 0).astype(np.float32))
    depth = ndimage.gaussian_filter(lung, 0.03 * nc) ** 0.75
    t = np.clip((y - an.y_apex) / (an.y_cp[0] - an.y_apex), 0.0, 1.0)
    air = 0.8 * an.lung_cm * depth * (0.7 + 0.3 * t)
    return resize(body.astype(np.float32), n), resize(air.astype(np.float32), n)


def _airways(an: A.Anatomy) -> np.ndarray:
    """Trachea and main bronchi as tubes (negative density: air in soft tissue)."""
    tx = an.cx + 0.3 * an.med_offset
    carina = (tx, 0.5 * (an.hila[0][1] + an.hila[1][1]) - 0.06)
    segs = [(tx, 0.0, tx, carina[1], 17.0)]
    for side in range(2):
        hx, hy = an.hila[side]
        segs.append((carina[0], carina[1], 0.5 * (carina[0] + hx), hy - 0.01, 12.0))
    return np.asarray(segs, dtype=np.float32)


def attenuation(spec: StudySpec, n: int, rng: np.random.Generator) -> tuple[np.ndarray, dict, dict]:
    """Water-equivalent thickness (cm), finding masks and anatomy masks of a study on an ``n`` grid."""
    an = spec.anatomy
    spacing = A.FOV_MM / n
    x, y = _grid(n)

    hemi = [A.hemithorax_field(an, i, x, y) for i in range(2)]
    heart_f = A.heart_field(an, x, y)
    med_f = A.mediastinum_field(an, x, y)
    not_med = np.maximum(-med_f, -heart_f)
    lung_f = [np.maximum(h, not_med) for h in hemi]
    thorax_f = np.minimum(np.minimum(hemi[0], hemi[1]), np.minimum(heart_f, np.maximum(med_f, an.y_apex - y)))
    lungs = [f < 0 for f in lung_f]
    lung_soft = [_soft(f, n) for f in lung_f]
    heart = heart_f < 0
    thorax = thorax_f < 0
    heart_soft = _soft(heart_f, n)

    body, air = _smooth_fields(an, n)
    trees = vessel_tree(rng_for(spec.seed, 5, *spec.patient_key))
    vessels = draw_lines(n, place_trees(an, trees), spacing)
    ctx = RenderContext(
        n,
        spacing,
        x,
        y,
        lungs,
        lung_soft,
        air,
        vessels,
        np.zeros((n, n), dtype=np.float32),
        np.ones((n, n), dtype=np.float32),
    )

    masks = {k: np.zeros((n, n), dtype=bool) for k in PHANTOM_LABELS}
    for f in spec.findings:
        if f.name == "Cardiomegaly":
            masks[f.name] = heart.copy()
        elif f.name == "Enlarged Cardiomediastinum":
            masks[f.name] = A.upper_mediastinum_field(an, x, y) < 0
        else:
            masks[f.name] |= PAINTERS[f.name](f, an, ctx)
    for k in masks:
        masks[k] &= thorax

    lung_any = lung_soft[0] + lung_soft[1]
    # water-equivalent thickness (cm): soft tissue, minus lung air (some lung lies behind the heart)
    atten = body - air * lung_any + 0.6 * heart_soft
    atten -= draw_lines(n, _airways(an), spacing, peak_cm_per_mm=0.12)
    atten += bone_map(n, an) * (1.0 + 0.22 * fine_noise(rng, n, spacing, 0.35))
    atten += vessels * np.clip(ctx.vessel_gain, -1.0, 1.0) * (lung_any + 0.35 * heart_soft)
    atten += ctx.density
    atten += 0.12 * power_law_noise(rng, n, spacing) * (0.3 + lung_any)
    gx, gy = an.cx + 0.55 * an.half_width[1], an.y_cp[1] - an.dome_height[1] + 0.05  # gastric bubble
    bubble = np.clip(1.0 - ((x - gx) / 0.05) ** 2 - ((y - gy) / 0.028) ** 2, 0.0, 1.0) ** 0.5
    atten -= 3.0 * bubble * (y > gy - 0.005)

    anatomy = {
        "lungs": lungs[0] | lungs[1],
        "heart": heart,
        "thorax": thorax,
        "lung_soft": lung_any,
        "heart_soft": heart_soft,
    }
    return atten, masks, anatomy


def check_noise_scale(noise_scale: float) -> float:
    if isinstance(noise_scale, bool) or not isinstance(noise_scale, (int, float, np.floating, np.integer)):
        raise TypeError(f"phantom noise_scale={noise_scale!r} must be a number >= 0 (1 = default dose).")
    if not np.isfinite(noise_scale) or noise_scale < 0:
        raise ValueError(
            f"phantom noise_scale={noise_scale!r} is invalid: use a finite number >= 0 (1 = the study's own "
            f"dose, 0.25 = 16x the dose, 0 = no quantum noise)."
        )
    return float(noise_scale)


def render_study(spec: StudySpec, size: int = 512, noise_scale: float = 1.0) -> PhantomSample:
    """Rasterise a sampled study at ``size`` x ``size`` pixels (native, no upsampling of a smaller render).

    ``noise_scale`` multiplies the quantum-noise standard deviation (see :func:`render_phantom`).
    """
    n = check_size(size)
    noise_scale = check_noise_scale(noise_scale)
    an, exp = spec.anatomy, spec.exposure
    spacing = A.FOV_MM / n
    rng = rng_for(spec.seed, 4, spec.index, n)
    atten, masks, anat = attenuation(spec, n, rng)
    heart, thorax = anat["heart"], anat["thorax"]

    # exposure: Beer-Lambert, quantum noise for this pixel area, detector blur, log
    mu = exp["mu_per_cm"]
    photons = exp["photons_ref"] * (spacing / 0.42) ** 2
    counts = photons * np.exp(-mu * np.maximum(atten, 0.0))
    quantum = np.sqrt(counts) * rng.standard_normal((n, n), dtype=np.float32)  # always drawn: same rng stream
    if (
        noise_scale != 1.0
    ):  # the default path stays bit-identical to renders made before the parameter existed
        quantum *= np.float32(noise_scale)
    counts += quantum
    sigma = exp["blur_mm"] / spacing
    if sigma >= 0.25:
        counts = ndimage.gaussian_filter(counts, sigma, truncate=3.0)
    log_att = -np.log(np.maximum(counts, 0.5) / photons) / mu
    lo, hi = exp["window_lo"], exp["window_hi"] * an.body_cm + 2.5
    img = np.clip((log_att - lo) / (hi - lo), 0.0, 1.0) ** (1.45 * exp["gamma"])

    return PhantomSample(
        image=img.astype(np.float32),
        labels=spec.labels.copy(),
        masks=masks,
        report=dict(spec.report),
        patient_id=spec.patient_id,
        index=spec.index,
        study_index=spec.study_index,
        ctr=measure_ctr(heart, thorax),
        pixel_spacing_mm=spacing,
        lungs=anat["lungs"],
        heart=heart,
        thorax=thorax,
        findings=list(spec.findings),
        view=spec.view,
        seed=spec.seed,
    )


def render_phantom(index: int, size: int = 512, seed: int = 0, noise_scale: float = 1.0) -> PhantomSample:
    """Render phantom study ``index`` of set ``seed`` at ``size`` pixels; deterministic per (seed, index, size).

    Args:
        index: study index in the phantom set.
        size: output side in pixels (native render, 128 to 2048).
        seed: phantom set seed.
        noise_scale: acquisition dose control: multiplies the per-pixel quantum-noise standard deviation
            (``1/sqrt(dose factor)``). 1 (default) is the study's own dose and reproduces earlier renders
            bit for bit; 0.25 is a 16x dose (the low-noise reference an SR dataset needs: real SR targets
            are downsampled from larger detector images, which averages quantum noise away); 0 is noiseless.
            Anatomy, vessels and bone/parenchymal texture do not change with it.
    """
    check_size(size)
    return render_study(sample_study(index, seed), size, noise_scale)
