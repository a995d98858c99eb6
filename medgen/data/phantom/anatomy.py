"""Patient anatomy of the chest phantom: parameters in normalised image coordinates and their fields.

Every shape is an implicit field ``F(x, y)`` over normalised coordinates (x to the right, y down, both in
[0, 1]; ``F < 0`` inside, ``|F|`` roughly the distance in image widths). Because geometry never depends on
the pixel grid, one patient rasterises to the same layout at 128 or 2048 pixels, and the same fields answer
point queries while findings are sampled (no pixels needed).

Sides follow the patient: index 0 is the patient's right (image left in a PA view), index 1 the left.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

FOV_MM = 430.0  # a 43 cm detector: pixel spacing is FOV_MM / size
SIDES: tuple[str, str] = ("right", "left")
SIGN: tuple[float, float] = (-1.0, 1.0)  # image-x direction of each patient side in a PA view
APEX_ROUNDING = 0.18  # fraction of the apex-to-costophrenic height over which the lung apex is rounded


@dataclass(frozen=True)
class Anatomy:
    """One patient's chest at one study, in normalised image coordinates."""

    cx: float  # body midline
    y_apex: float  # lung apex level
    y_cp: tuple[float, float]  # costophrenic angle level per side
    half_width: tuple[float, float]  # inner rib margin distance from the midline at its widest, per side
    apex_u: tuple[float, float]  # lateral position of each apex, fraction of half_width
    dome_height: tuple[float, float]  # hemidiaphragm dome height above the costophrenic angle
    dome_peak: tuple[float, float]  # lateral position of each dome, fraction of half_width
    med_half_width: float  # upper (superior) mediastinum half width
    med_offset: float  # mediastinum shift to the image right (aortic arch side)
    knob_radius: float  # aortic knob
    heart: tuple[float, float, float, float, float]  # centre x, centre y, semi-axes a, b, tilt (rad)
    ctr_target: float  # cardiothoracic ratio the heart was built for
    hila: tuple[tuple[float, float], tuple[float, float]]  # (x, y) per side
    rib_first: float  # level of the first posterior rib at the spine
    rib_spacing: float
    rib_rise: float  # posterior ribs rise laterally by rib_rise * u ...
    rib_drop: float  # ... and curve down by rib_drop at the lateral wall
    ant_rib_slope: float  # anterior ribs descend medially with this slope
    rib_half: float  # posterior rib half thickness
    clavicle_y: float
    clavicle_tilt: float
    body_half_width: float
    body_cm: float  # water-equivalent thickness through the mediastinum
    lung_cm: float  # air path through the thickest part of the lungs
    vertebra_height: float
    shoulder_y: float

    @property
    def thorax_width(self) -> float:
        """Internal thoracic diameter (sum of the half widths), the CTR denominator."""
        return self.half_width[0] + self.half_width[1]

    @property
    def heart_top(self) -> float:
        hcx, hcy, a, b, th = self.heart
        return hcy - math.sqrt((a * math.sin(th)) ** 2 + (b * math.cos(th)) ** 2)


def smoothstep(t: np.ndarray | float) -> np.ndarray | float:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def smooth_max(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Maximum with a rounded corner of size ``k`` (keeps field iso-lines smooth)."""
    return 0.5 * (a + b + np.sqrt((a - b) ** 2 + k * k))


# --- fields --------------------------------------------------------------------------------------------
def lateral_profile(an: Anatomy, i: int, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Medial and lateral lung limits (distance from the midline) of hemithorax ``i`` at level ``y``."""
    t = (y - an.y_apex) / (an.y_cp[i] - an.y_apex)
    tt = np.clip(t, 0.0, 1.0)
    q = np.clip(1.0 - tt / APEX_ROUNDING, 0.0, 1.0)
    g = np.sqrt(1.0 - q * q)  # rounded apex: 0 at the apex, 1 below the rounding
    w = an.half_width[i]
    ua = an.apex_u[i] * w
    prof = w * (0.62 + 0.38 * np.sin(0.5 * math.pi * np.clip(tt / 0.85, 0.0, 1.0)))
    return ua * (1.0 - g), ua + (prof - ua) * g, t


def diaphragm_y(an: Anatomy, i: int, u: np.ndarray) -> np.ndarray:
    """Level of hemidiaphragm ``i`` at distance ``u`` from the midline (dome, then a sharp lateral angle)."""
    w = an.half_width[i]
    r = np.clip(u / w, 0.0, None)
    rp = an.dome_peak[i]
    medial = 0.55 + 0.45 * np.sin(0.5 * math.pi * np.clip(r / rp, 0.0, 1.0))
    lateral = 1.0 - np.clip((r - rp) / (1.0 - rp), 0.0, 1.0) ** 1.6
    return an.y_cp[i] - an.dome_height[i] * np.where(r < rp, medial, lateral)


def diaphragm_at(an: Anatomy, x: np.ndarray) -> np.ndarray:
    """Diaphragm level under image column ``x`` (right hemidiaphragm left of the midline)."""
    return np.where(x < an.cx, diaphragm_y(an, 0, an.cx - x), diaphragm_y(an, 1, x - an.cx))


def hemithorax_field(an: Anatomy, i: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Hemithorax ``i``: inside the rib margin, below the apex, above the hemidiaphragm."""
    u = SIGN[i] * (x - an.cx)
    u_med, u_lat, _ = lateral_profile(an, i, y)
    f = np.maximum(u_med - u, u - u_lat)
    f = np.maximum(f, y - diaphragm_y(an, i, u))
    return np.maximum(f, an.y_apex - y)


def heart_ellipse_field(an: Anatomy, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    hcx, hcy, a, b, th = an.heart
    dx, dy = x - hcx, y - hcy
    c, s = math.cos(th), math.sin(th)
    xr, yr = dx * c + dy * s, -dx * s + dy * c
    return (np.sqrt((xr / a) ** 2 + (yr / b) ** 2) - 1.0) * min(a, b)


def heart_field(an: Anatomy, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cardiac silhouette: a tilted ellipse resting on (clipped by) the diaphragm."""
    return np.maximum(heart_ellipse_field(an, x, y), y - diaphragm_at(an, x))


def mediastinum_field(an: Anatomy, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mediastinal band (wide above the heart, narrow behind it) with the aortic knob, down to the diaphragm."""
    ht = an.heart_top
    lower = 0.55 * an.med_half_width
    m = lower + (an.med_half_width - lower) * (1.0 - smoothstep((y - (ht - 0.02)) / 0.06))
    mx = an.cx + an.med_offset
    f = np.abs(x - mx) - m
    kx, ky = mx + 0.75 * an.med_half_width, ht - 0.015
    knob = np.sqrt((x - kx) ** 2 + (y - ky) ** 2) - an.knob_radius
    f = np.minimum(f, knob)
    return np.maximum(f, y - diaphragm_at(an, x))


def lung_field(an: Anatomy, i: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Lung ``i`` = hemithorax minus mediastinum and heart."""
    f = hemithorax_field(an, i, x, y)
    f = np.maximum(f, -mediastinum_field(an, x, y))
    return np.maximum(f, -heart_field(an, x, y))


def thorax_field(an: Anatomy, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Thoracic cavity: both hemithoraces, the heart and the mediastinum between apex and diaphragm."""
    f = np.minimum(hemithorax_field(an, 0, x, y), hemithorax_field(an, 1, x, y))
    f = np.minimum(f, heart_field(an, x, y))
    return np.minimum(f, np.maximum(mediastinum_field(an, x, y), an.y_apex - y))


def upper_mediastinum_field(an: Anatomy, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Superior mediastinum (above the heart, below the apices): the Enlarged Cardiomediastinum region."""
    f = np.maximum(mediastinum_field(an, x, y), y - an.heart_top)
    return np.maximum(f, an.y_apex + 0.02 - y)


# --- heart sizing ----------------------------------------------------------------------------------------
def heart_extent(an: Anatomy, samples: int = 2048) -> float:
    """Transverse heart diameter of the clipped heart, from its outline (no pixels)."""
    hcx, hcy, a, b, th = an.heart
    t = np.linspace(0.0, 2.0 * math.pi, samples, endpoint=False)
    c, s = math.cos(th), math.sin(th)
    x = hcx + a * np.cos(t) * c - b * np.sin(t) * s
    y = hcy + a * np.cos(t) * s + b * np.sin(t) * c
    keep = y <= diaphragm_at(an, x)
    return float(x[keep].max() - x[keep].min()) if keep.any() else 0.0


def build_heart(an: Anatomy, ctr: float, aspect: float, tilt: float, right_share: float) -> Anatomy:
    """Return ``an`` with a heart whose transverse diameter is ``ctr`` x the thoracic diameter.

    The heart sits on the diaphragm; if the diaphragm clips an extreme point, the heart is lifted until the
    measured extent matches, so the cardiothoracic ratio on the rendered masks is the one asked for.
    """
    extent = ctr * an.thorax_width
    a = extent / (2.0 * math.sqrt(math.cos(tilt) ** 2 + (aspect * math.sin(tilt)) ** 2))
    b = aspect * a
    hcx = an.cx + extent * (0.5 - right_share)
    vert = math.sqrt((a * math.sin(tilt)) ** 2 + (b * math.cos(tilt)) ** 2)
    floor = float(diaphragm_at(an, np.asarray(hcx)))
    hcy = floor - 0.72 * vert
    for _ in range(40):
        cand = replace(an, heart=(hcx, hcy, a, b, tilt), ctr_target=ctr)
        if heart_extent(cand) >= extent * 0.998:
            return cand
        hcy -= 0.004
    return cand


# --- sampling ----------------------------------------------------------------------------------------------
def sample_anatomy(rng: np.random.Generator, ctr: float) -> Anatomy:
    """A new patient: shape, size and position vary; the heart is built for cardiothoracic ratio ``ctr``."""
    u = rng.uniform
    cx = 0.5 + u(-0.02, 0.02)
    y_apex = u(0.11, 0.15)
    y_cp_r = u(0.74, 0.80)
    hw = u(0.33, 0.385)
    an = Anatomy(
        cx=cx,
        y_apex=y_apex,
        y_cp=(y_cp_r, y_cp_r + u(0.0, 0.02)),
        half_width=(hw * u(0.97, 1.03), hw * u(0.97, 1.03)),
        apex_u=(u(0.40, 0.52), u(0.40, 0.52)),
        dome_height=(u(0.065, 0.095), u(0.050, 0.080)),
        dome_peak=(u(0.40, 0.55), u(0.40, 0.55)),
        med_half_width=u(0.060, 0.074),
        med_offset=u(0.004, 0.014),
        knob_radius=u(0.018, 0.026),
        heart=(0.0, 0.0, 1.0, 1.0, 0.0),
        ctr_target=ctr,
        hila=((0.0, 0.0), (0.0, 0.0)),
        rib_first=y_apex + u(-0.005, 0.01),
        rib_spacing=(y_cp_r - y_apex) * u(0.098, 0.108),
        rib_rise=u(0.08, 0.16),
        rib_drop=u(0.05, 0.08),
        ant_rib_slope=u(0.30, 0.45),
        rib_half=u(0.0095, 0.0125),
        clavicle_y=y_apex + u(0.02, 0.045),
        clavicle_tilt=u(0.01, 0.04),
        body_half_width=hw + u(0.07, 0.11),
        body_cm=u(20.0, 26.0),
        lung_cm=u(14.0, 18.0),
        vertebra_height=(y_cp_r - y_apex) * u(0.085, 0.095),
        shoulder_y=y_apex + u(-0.04, 0.0),
    )
    an = _place_hila(an)
    return build_heart(an, ctr, aspect=u(0.70, 0.84), tilt=u(0.30, 0.55), right_share=u(0.28, 0.36))


def _place_hila(an: Anatomy) -> Anatomy:
    h = an.y_cp[0] - an.y_apex
    right = (an.cx - 0.9 * an.med_half_width - 0.055, an.y_apex + 0.42 * h)
    left = (an.cx + an.med_offset + 0.9 * an.med_half_width + 0.045, an.y_apex + 0.37 * h)
    return replace(an, hila=(right, left))


def jitter_anatomy(base: Anatomy, rng: np.random.Generator) -> Anatomy:
    """The same patient at a later study: small changes in position, inspiration and scale."""
    u = rng.uniform
    dx, dy, scale, insp = u(-0.008, 0.008), u(-0.008, 0.008), u(0.985, 1.015), u(-0.012, 0.012)
    an = replace(
        base,
        cx=base.cx + dx,
        y_apex=base.y_apex + dy,
        y_cp=(base.y_cp[0] + dy + insp, base.y_cp[1] + dy + insp),
        half_width=(base.half_width[0] * scale, base.half_width[1] * scale),
        rib_first=base.rib_first + dy,
        clavicle_y=base.clavicle_y + dy,
        shoulder_y=base.shoulder_y + dy,
        body_half_width=base.body_half_width * scale,
    )
    an = _place_hila(an)
    hcx, hcy, a, b, th = base.heart
    right_share = 0.5 - (hcx - base.cx) / (base.ctr_target * base.thorax_width)
    ctr = base.ctr_target + u(-0.005, 0.005)
    return build_heart(an, ctr, aspect=b / a, tilt=th, right_share=right_share)


def lung_frame_point(an: Anatomy, side: int, t: float, s: float) -> tuple[float, float]:
    """Point at height fraction ``t`` (apex 0, costophrenic 1) and lateral fraction ``s`` of the half width."""
    return an.cx + SIGN[side] * s * an.half_width[side], an.y_apex + t * (an.y_cp[side] - an.y_apex)


def inside_lung(an: Anatomy, side: int, x: float, y: float, margin: float = 0.0) -> bool:
    return bool(lung_field(an, side, np.asarray(x), np.asarray(y)) < -margin)
