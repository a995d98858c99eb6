"""Findings of the phantom: sampling (no pixels) and rasterisation into masks and added density.

A :class:`Finding` holds everything the report needs (side, zone, size, severity) and its geometry in the
lung frame (``t``: apex 0 to costophrenic angle 1, ``s``: fraction of the half width from the midline), so a
lesion followed over several studies of one patient stays in place while the anatomy shifts a little.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medgen.data.phantom.anatomy import (
    FOV_MM,
    SIDES,
    SIGN,
    Anatomy,
    diaphragm_y,
    lateral_profile,
    lung_field,
    lung_frame_point,
    smooth_max,
    smoothstep,
)
from medgen.data.phantom.texture import draw_lines, eval_lattice, lattice_noise

ZONES: dict[str, tuple[float, float]] = {"upper": (0.10, 0.36), "mid": (0.36, 0.62), "lower": (0.62, 0.90)}
LOBES: dict[tuple[str, str], str] = {
    ("right", "upper"): "right upper lobe",
    ("right", "mid"): "right middle lobe",
    ("right", "lower"): "right lower lobe",
    ("left", "upper"): "left upper lobe",
    ("left", "mid"): "lingular segment of the left upper lobe",
    ("left", "lower"): "left lower lobe",
}


@dataclass
class Finding:
    """One finding: what the report says about it and how to draw it."""

    name: str  # a PHANTOM_LABELS entry
    side: str | None = None  # "right", "left", "bilateral" or None (central)
    zone: str | None = None  # "upper", "mid", "lower"
    size_mm: float | None = None
    severity: str | None = None  # "small"/"moderate"/"large" or "mild"/"moderate"/"marked"
    descriptor: str | None = None  # e.g. "plate-like", "lobulated", "with air bronchograms"
    geom: dict[str, Any] = field(default_factory=dict)

    @property
    def side_index(self) -> int:
        return SIDES.index(self.side) if self.side in SIDES else 0


def zone_of(t: float) -> str:
    return "upper" if t < 0.36 else ("mid" if t < 0.62 else "lower")


def _lung_point(an: Anatomy, rng: np.random.Generator, side: int, t_range, s_range, margin: float):
    """Rejection-sample a lung-frame point whose image position lies ``margin`` inside lung ``side``."""
    for k in range(400):
        if k == 100:  # crowded (large heart, wide mediastinum): allow the whole width of the lung
            s_range = (0.12, 0.96)
        t, s = rng.uniform(*t_range), rng.uniform(*s_range)
        x, y = lung_frame_point(an, side, t, s)
        if lung_field(an, side, np.asarray(x), np.asarray(y)) < -margin:
            return t, s
    raise RuntimeError("phantom: could not place a lesion inside the lung (anatomy too small)")


# --- sampling (no pixels) ------------------------------------------------------------------------------------
def sample_nodule(an: Anatomy, rng: np.random.Generator) -> Finding:
    side = int(rng.integers(2))
    d = float(rng.uniform(12.0, 28.0))
    r = d / 2.0 / FOV_MM
    t, s = _lung_point(an, rng, side, (0.12, 0.85), (0.2, 0.9), r + 0.012)
    return Finding(
        "Nodule",
        SIDES[side],
        zone_of(t),
        round(d),
        None,
        str(rng.choice(["well-circumscribed", "rounded", "solitary"])),
        {"t": t, "s": s, "r": r},
    )


def sample_mass(an: Anatomy, rng: np.random.Generator) -> Finding:
    side = int(rng.integers(2))
    d = float(rng.uniform(35.0, 65.0))
    r = d / 2.0 / FOV_MM
    t, s = _lung_point(an, rng, side, (0.15, 0.75), (0.3, 0.8), 0.75 * r + 0.01)
    harm = rng.uniform(-0.09, 0.09, 4).tolist()
    phase = rng.uniform(0, 2 * math.pi, 4).tolist()
    return Finding(
        "Mass",
        SIDES[side],
        zone_of(t),
        round(d / 10.0, 1) * 10.0,
        None,
        str(rng.choice(["lobulated", "rounded", "irregular"])),
        {"t": t, "s": s, "r": r, "harm": harm, "phase": phase},
    )


def sample_effusion(an: Anatomy, rng: np.random.Generator, side: str | None = None) -> Finding:
    side = side or str(rng.choice(["right", "left", "bilateral"], p=[0.4, 0.35, 0.25]))
    sev = str(rng.choice(["small", "moderate", "large"], p=[0.5, 0.35, 0.15]))
    lift = {"small": (0.04, 0.07), "moderate": (0.15, 0.22), "large": (0.28, 0.38)}[sev]
    geom = {"lift": float(rng.uniform(*lift)), "medial_drop": float(rng.uniform(0.03, 0.07))}
    return Finding("Effusion", side, "lower", None, sev, None, geom)


def sample_pneumothorax(an: Anatomy, rng: np.random.Generator) -> Finding:
    side = str(rng.choice(["right", "left"]))
    sev = str(rng.choice(["small", "moderate", "large"], p=[0.45, 0.35, 0.2]))
    rim = {"small": (0.03, 0.045), "moderate": (0.05, 0.075), "large": (0.085, 0.12)}[sev]
    r_ap = float(rng.uniform(*rim))
    return Finding(
        "Pneumothorax",
        side,
        "upper",
        round(r_ap * FOV_MM),
        sev,
        "apical",
        {"r": r_ap, "t_end": float(rng.uniform(0.55, 0.85))},
    )


def _region(an, rng, name, zone=None, density=(0.7, 0.9)):
    side = int(rng.integers(2))
    zone = zone or str(rng.choice(list(ZONES)))
    t, s = _lung_point(an, rng, side, ZONES[zone], (0.3, 0.85), 0.02)
    return (
        side,
        zone,
        {
            "t": t,
            "s": s,
            "rx": float(rng.uniform(0.05, 0.085)),
            "ry": float(rng.uniform(0.045, 0.07)),
            "lattice": lattice_noise(rng).tolist(),
            "fill": float(rng.uniform(*density)),
        },
    )


def sample_consolidation(an: Anatomy, rng: np.random.Generator) -> Finding:
    side, zone, geom = _region(an, rng, "Consolidation", density=(0.72, 0.9))
    bronch = bool(rng.random() < 0.6)
    return Finding(
        "Consolidation",
        SIDES[side],
        zone,
        None,
        None,
        "with air bronchograms" if bronch else str(rng.choice(["dense", "lobar", "focal"])),
        {**geom, "bronchograms": bronch},
    )


def sample_opacity(an: Anatomy, rng: np.random.Generator) -> Finding:
    side, zone, geom = _region(an, rng, "Lung Opacity", density=(0.32, 0.45))
    geom["rx"] *= 1.2
    geom["ry"] *= 1.2
    return Finding(
        "Lung Opacity",
        SIDES[side],
        zone,
        None,
        None,
        str(rng.choice(["patchy", "hazy", "ill-defined"])),
        geom,
    )


def sample_atelectasis(an: Anatomy, rng: np.random.Generator) -> Finding:
    side = int(rng.integers(2))
    kind = str(rng.choice(["plate-like", "wedge-shaped"], p=[0.6, 0.4]))
    if kind == "plate-like":
        t, s = _lung_point(an, rng, side, (0.62, 0.82), (0.3, 0.9), 0.025)
        geom = {
            "t": t,
            "s": s,
            "angle": float(rng.uniform(-0.25, 0.25)),
            "length": float(rng.uniform(0.08, 0.13)),
            "half": float(rng.uniform(0.0042, 0.007)),
        }
    else:
        geom = {
            "s0": float(rng.uniform(0.3, 0.45)),
            "s1": float(rng.uniform(0.65, 0.85)),
            "apex_t": float(rng.uniform(0.55, 0.65)),
            "apex_s": float(rng.uniform(0.45, 0.6)),
        }
    return Finding("Atelectasis", SIDES[side], "lower", None, None, kind, {"kind": kind, **geom})


def sample_edema(an: Anatomy, rng: np.random.Generator) -> Finding:
    sev = str(rng.choice(["mild", "moderate", "severe"], p=[0.4, 0.4, 0.2]))
    dens = {"mild": 0.22, "moderate": 0.32, "severe": 0.45}[sev]
    kerley = []
    for side in range(2):
        for _ in range(int(rng.integers(6, 14))):
            kerley.append(
                (
                    side,
                    float(rng.uniform(0.62, 0.92)),
                    float(rng.uniform(0.80, 0.96)),
                    float(rng.uniform(0.010, 0.022)),
                )
            )
    return Finding(
        "Edema",
        "bilateral",
        None,
        None,
        sev,
        "perihilar",
        {
            "density": dens,
            "rx": float(rng.uniform(0.07, 0.10)),
            "ry": float(rng.uniform(0.09, 0.13)),
            "kerley": kerley,
        },
    )


SAMPLERS = {
    "Nodule": sample_nodule,
    "Mass": sample_mass,
    "Effusion": sample_effusion,
    "Pneumothorax": sample_pneumothorax,
    "Consolidation": sample_consolidation,
    "Lung Opacity": sample_opacity,
    "Atelectasis": sample_atelectasis,
    "Edema": sample_edema,
}


# --- rasterisation ------------------------------------------------------------------------------------------------
@dataclass
class RenderContext:
    """Per-render arrays shared by the finding painters (normalised pixel-centre coordinates, anatomy)."""

    n: int
    spacing_mm: float
    x: np.ndarray  # (1, n)
    y: np.ndarray  # (n, 1)
    lungs: list[np.ndarray]  # bool per side
    lung_soft: list[np.ndarray]  # float32 per side (anti-aliased)
    air_cm: np.ndarray  # water-equivalent reduction by lung air (cm)
    vessels: np.ndarray  # vessel density (cm)
    density: np.ndarray  # accumulated added density (cm), painted in place
    vessel_gain: np.ndarray  # multiplier applied to vessels (0 where the lung has no vessels)


def _soft(f: np.ndarray, width: float) -> np.ndarray:
    """Soft inside-indicator of field ``f`` with an edge ``width`` wide (normalised units)."""
    return np.clip(0.5 - f / width, 0.0, 1.0).astype(np.float32)


def _sides(f: Finding) -> list[int]:
    return [0, 1] if f.side == "bilateral" else [f.side_index]


def paint_nodule(f: Finding, an: Anatomy, ctx: RenderContext) -> np.ndarray:
    side = f.side_index
    px, py = lung_frame_point(an, side, f.geom["t"], f.geom["s"])
    r = f.geom["r"]
    dx, dy = ctx.x - px, ctx.y - py
    rho = np.sqrt(dx * dx + dy * dy)
    if "harm" in f.geom:
        phi = np.arctan2(dy, dx)
        mod = 1.0 + sum(
            a * np.cos((k + 2) * phi + p) for k, (a, p) in enumerate(zip(f.geom["harm"], f.geom["phase"]))
        )
        rho = rho / mod
    q = rho / r
    sphere = np.sqrt(np.clip(1.0 - q * q, 0.0, None))
    edge = _soft((q - 1.0) * r, 1.5 / ctx.n)
    ctx.density += (0.3 * f.geom["r"] * FOV_MM * np.maximum(sphere, 0.25 * edge)).astype(np.float32)
    return (q < 1.0) & ctx.lungs[side]


def _effusion_top(an: Anatomy, f: Finding, side: int, u: np.ndarray) -> np.ndarray:
    w = an.half_width[side]
    y_lat = an.y_cp[side] - f.geom["lift"]
    y_dome = an.y_cp[side] - an.dome_height[side]
    if f.severity == "small":  # fluid only in the lateral costophrenic recess
        y_base = an.y_cp[side] + 0.01
    else:  # the meniscus rises laterally and the fluid covers the dome
        y_base = (
            y_dome - (0.4 if f.severity == "moderate" else 0.6) * f.geom["lift"] + 0.2 * f.geom["medial_drop"]
        )
    return y_base - (y_base - y_lat) * np.clip(u / w, 0.0, 1.0) ** 2


def paint_effusion(f: Finding, an: Anatomy, ctx: RenderContext) -> np.ndarray:
    mask = np.zeros((ctx.n, ctx.n), dtype=bool)
    for side in _sides(f):
        u = SIGN[side] * (ctx.x - an.cx)
        top = _effusion_top(an, f, side, u)
        depth = ctx.y - top
        frac = smoothstep(depth / 0.025) ** 0.8
        ctx.density += (0.97 * frac * ctx.air_cm * ctx.lung_soft[side]).astype(np.float32)
        ctx.vessel_gain *= (1.0 - frac * ctx.lung_soft[side]).astype(np.float32)
        mask |= ctx.lungs[side] & (depth > 0)
    return mask


def paint_pneumothorax(f: Finding, an: Anatomy, ctx: RenderContext) -> np.ndarray:
    side = f.side_index
    u = SIGN[side] * (ctx.x - an.cx)
    _, u_lat, t = lateral_profile(an, side, ctx.y)
    r = f.geom["r"] * (1.0 - smoothstep((t - 0.3) / (f.geom["t_end"] - 0.3)))
    g = smooth_max((u_lat - r) - u, an.y_apex + f.geom["r"] - ctx.y, 0.04)  # <0: collapsed lung
    mask = ctx.lungs[side] & (g >= 0) & (r > 0.0025)
    ptx = _soft(-g, 1.5 / ctx.n) * ctx.lung_soft[side] * (r > 0.0025)
    ctx.vessel_gain *= (1.0 - ptx).astype(np.float32)
    ctx.density -= (0.12 * ctx.air_cm * ptx).astype(np.float32)  # no lung tissue left in the pleural space
    # visceral pleural line ~0.8 mm thick: at least one pixel wide, its contrast diluted on coarse grids
    line_half_px = max(0.5, 0.4 / ctx.spacing_mm)
    gain = 1.1 * min(1.0, 0.8 / (2.0 * line_half_px * ctx.spacing_mm))
    line = np.clip(1.0 - np.abs(g) * ctx.n / line_half_px, 0.0, 1.0) * ctx.lung_soft[side] * (r > 0.004)
    ctx.density += (gain * line).astype(np.float32)
    return mask


def _blob(f: Finding, an: Anatomy, ctx: RenderContext, wobble: float) -> tuple[np.ndarray, np.ndarray]:
    side = f.side_index
    px, py = lung_frame_point(an, side, f.geom["t"], f.geom["s"])
    rx, ry = f.geom["rx"], f.geom["ry"]
    lat = np.asarray(f.geom["lattice"], dtype=np.float32)
    e = np.sqrt(((ctx.x - px) / rx) ** 2 + ((ctx.y - py) / ry) ** 2)
    noise = eval_lattice(lat, (ctx.x - px + rx * 1.3) / (2.6 * rx), (ctx.y - py + ry * 1.3) / (2.6 * ry))
    return (e - 1.0 + wobble * noise) * min(rx, ry), ctx.lung_soft[side]


def paint_consolidation(f: Finding, an: Anatomy, ctx: RenderContext) -> np.ndarray:
    fld, lung = _blob(f, an, ctx, 0.35)
    soft = _soft(fld, 0.012) * lung
    ctx.density += (f.geom["fill"] * ctx.air_cm * soft).astype(np.float32)
    if f.geom.get("bronchograms"):
        ctx.vessel_gain -= (1.9 * soft).astype(np.float32)  # vessels drawn dark: air-filled bronchi
    else:
        ctx.vessel_gain *= (1.0 - soft).astype(np.float32)
    return (fld < 0) & ctx.lungs[f.side_index]


def paint_opacity(f: Finding, an: Anatomy, ctx: RenderContext) -> np.ndarray:
    fld, lung = _blob(f, an, ctx, 0.7)
    soft = _soft(fld, 0.03) * lung
    ctx.density += (f.geom["fill"] * ctx.air_cm * soft).astype(np.float32)
    return (fld < 0) & ctx.lungs[f.side_index]


def paint_atelectasis(f: Finding, an: Anatomy, ctx: RenderContext) -> np.ndarray:
    side, g = f.side_index, f.geom
    if g["kind"] == "plate-like":
        px, py = lung_frame_point(an, side, g["t"], g["s"])
        c, s = math.cos(g["angle"]), math.sin(g["angle"])
        along = (ctx.x - px) * c + (ctx.y - py) * s
        across = -(ctx.x - px) * s + (ctx.y - py) * c
        fld = np.maximum(np.abs(across) - g["half"], np.abs(along) - 0.5 * g["length"])
        prof = np.sqrt(np.clip(1.0 - (across / g["half"]) ** 2, 0.0, None)) * np.clip(
            (0.5 * g["length"] - np.abs(along)) / 0.015, 0.0, 1.0
        )
        ctx.density += (0.30 * ctx.air_cm * np.maximum(prof, 0.0) * ctx.lung_soft[side]).astype(np.float32)
    else:
        ax, ay = lung_frame_point(an, side, g["apex_t"], g["apex_s"])
        u = SIGN[side] * (ctx.x - an.cx)
        w = an.half_width[side]
        pts = [(SIGN[side] * (ax - an.cx), ay)]
        for frac in (g["s0"], g["s1"]):
            pts.append((frac * w, float(diaphragm_y(an, side, np.asarray(frac * w))) + 0.02))
        fld = None
        for k in range(3):
            (pu, pv), (qu, qv), (ru, rv) = pts[k], pts[(k + 1) % 3], pts[(k + 2) % 3]
            eu, ev = qu - pu, qv - pv
            norm = math.hypot(eu, ev)
            inward = math.copysign(1.0, eu * (rv - pv) - ev * (ru - pu))
            edge = -inward * (eu * (ctx.y - pv) - ev * (u - pu)) / norm
            fld = edge if fld is None else np.maximum(fld, edge)
        soft = _soft(fld, 0.01)
        ctx.density += (0.55 * ctx.air_cm * soft * ctx.lung_soft[side]).astype(np.float32)
        ctx.vessel_gain *= (1.0 - soft * ctx.lung_soft[side]).astype(np.float32)
    return (fld < 0) & ctx.lungs[side]


def paint_edema(f: Finding, an: Anatomy, ctx: RenderContext) -> np.ndarray:
    g = f.geom
    haze = np.zeros((ctx.n, ctx.n), dtype=np.float32)
    for side in range(2):
        hx, hy = an.hila[side]
        h = np.exp(-0.5 * (((ctx.x - hx) / g["rx"]) ** 2 + ((ctx.y - hy) / g["ry"]) ** 2)).astype(np.float32)
        haze = np.maximum(haze, h * ctx.lung_soft[side])
    ctx.density += (g["density"] * ctx.air_cm * haze).astype(np.float32)
    segs = []
    for side, t, s, length in g["kerley"]:
        x, y = lung_frame_point(an, int(side), t, s)
        u_lat = float(lateral_profile(an, int(side), np.asarray(y))[1])
        xl = an.cx + SIGN[int(side)] * u_lat
        segs.append((xl, y, xl - SIGN[int(side)] * length, y, 1.3))
    kerley = draw_lines(ctx.n, np.asarray(segs, dtype=np.float32), ctx.spacing_mm, peak_cm_per_mm=0.35)
    ctx.density += kerley * (ctx.lung_soft[0] + ctx.lung_soft[1])
    return (haze > 0.3) & (ctx.lungs[0] | ctx.lungs[1])


PAINTERS = {
    "Nodule": paint_nodule,
    "Mass": paint_nodule,
    "Effusion": paint_effusion,
    "Pneumothorax": paint_pneumothorax,
    "Consolidation": paint_consolidation,
    "Lung Opacity": paint_opacity,
    "Atelectasis": paint_atelectasis,
    "Edema": paint_edema,
}
