"""Study sampling: patient ids, anatomy, findings, labels and report, all without rendering pixels.

Randomness is drawn from :class:`numpy.random.SeedSequence` streams keyed by ``(seed, stream, ...)``, so a
study depends only on ``(seed, index)``; nothing is cached and nothing depends on the call order.
Indices are grouped in blocks of four; each block is split into 1-4 patients with 1-4 studies each, so several
images share a patient id (the same anatomy with small changes, chronic findings persisting) and
patient-level splits have something to get right.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from medgen.data.labels import PHANTOM_LABELS
from medgen.data.phantom.anatomy import Anatomy, jitter_anatomy, sample_anatomy
from medgen.data.phantom.findings import SAMPLERS, Finding

BLOCK = 4
COMPOSITIONS: tuple[tuple[int, ...], ...] = (
    (4,),
    (3, 1),
    (1, 3),
    (2, 2),
    (2, 1, 1),
    (1, 2, 1),
    (1, 1, 2),
    (1, 1, 1, 1),
)
# Per-patient (chronic) and per-study (acute) probabilities; about half of all studies come out normal.
P_CARDIOMEGALY = 0.13
P_ENLARGED_MEDIASTINUM = 0.07
P_NODULE = 0.07
P_MASS = 0.05
P_ACUTE = 0.34
ACUTE = {
    "Effusion": 0.30,
    "Consolidation": 0.25,
    "Lung Opacity": 0.30,
    "Atelectasis": 0.28,
    "Pneumothorax": 0.16,
    "Edema": 0.20,
}
NORMAL_CTR = (0.38, 0.465)  # every normal heart stays well below 0.5 ...
ENLARGED_CTR = (0.54, 0.64)  # ... and every enlarged one well above, after rasterisation at 128 px


def rng_for(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *[int(k) for k in key]]))


@dataclass
class StudySpec:
    """Everything about one phantom study except its pixels."""

    index: int
    seed: int
    patient_id: str
    study_index: int  # 0-based position among this patient's studies
    n_studies: int
    patient_key: tuple[int, int]  # (block, patient number in block): seeds the patient's vessel trees
    anatomy: Anatomy
    findings: list[Finding]
    labels: np.ndarray
    exposure: dict[str, float]
    report: dict[str, str] = field(default_factory=dict)
    view: str = "PA"

    @property
    def ctr(self) -> float:
        return self.anatomy.ctr_target


def patient_of(index: int, seed: int = 0) -> tuple[str, int, int, tuple[int, int]]:
    """``(patient_id, study_index, n_studies, (block, patient_in_block))`` for a study index."""
    block, slot = divmod(int(index), BLOCK)
    comp = COMPOSITIONS[int(rng_for(seed, 0, block).integers(len(COMPOSITIONS)))]
    start = 0
    for j, k in enumerate(comp):
        if slot < start + k:
            return f"PHANTOM-{seed}-{block:06d}-{j}", slot - start, k, (block, j)
        start += k
    raise AssertionError("unreachable: compositions sum to BLOCK")


def _patient(seed: int, key: tuple[int, int]) -> tuple[Anatomy, list[Finding]]:
    rng = rng_for(seed, 1, *key)
    enlarged = rng.random() < P_CARDIOMEGALY
    ctr = float(rng.uniform(*(ENLARGED_CTR if enlarged else NORMAL_CTR)))
    an = sample_anatomy(rng, ctr)
    chronic: list[Finding] = []
    if enlarged:
        sev = "mild" if ctr < 0.57 else ("moderate" if ctr < 0.61 else "marked")
        chronic.append(Finding("Cardiomegaly", None, None, None, sev, None, {"ctr": ctr}))
    if rng.random() < P_ENLARGED_MEDIASTINUM:
        from dataclasses import replace

        an = replace(an, med_half_width=float(rng.uniform(0.105, 0.13)))
        chronic.append(
            Finding(
                "Enlarged Cardiomediastinum",
                None,
                None,
                round(an.med_half_width * 2 * 43, 1),
                None,
                "superior mediastinal widening",
                {},
            )
        )
    if rng.random() < P_NODULE:
        chronic.append(SAMPLERS["Nodule"](an, rng))
    if rng.random() < P_MASS:
        chronic.append(SAMPLERS["Mass"](an, rng))
    return an, chronic


def sample_study(index: int, seed: int = 0) -> StudySpec:
    """Sample study ``index`` of phantom set ``seed``: patient, anatomy, findings, labels and report."""
    from medgen.data.phantom.report import make_report

    if int(index) < 0:
        raise ValueError(f"phantom index must be >= 0, got {index}")
    patient_id, study_index, n_studies, key = patient_of(index, seed)
    base, chronic = _patient(seed, key)
    rng = rng_for(seed, 2, index)
    an = jitter_anatomy(base, rng)
    findings = list(chronic)
    if rng.random() < P_ACUTE:
        names = [
            k
            for k, p in ACUTE.items()
            if rng.random() < (0.4 if k == "Edema" and chronic and chronic[0].name == "Cardiomegaly" else p)
        ]
        if not names:
            weights = np.array(list(ACUTE.values()))
            names = [list(ACUTE)[int(rng.choice(len(ACUTE), p=weights / weights.sum()))]]
        findings += [SAMPLERS[k](an, rng) for k in names]
    labels = np.zeros(len(PHANTOM_LABELS), dtype=np.float32)
    for f in findings:
        labels[PHANTOM_LABELS.index(f.name)] = 1.0
    exposure = {
        "mu_per_cm": float(rng.uniform(0.17, 0.21)),
        "photons_ref": float(rng.uniform(6e3, 2e4)),  # per 0.42 mm pixel through no patient
        "blur_mm": float(rng.uniform(0.12, 0.25)),
        "window_lo": float(rng.uniform(-0.8, 0.4)),
        "window_hi": float(rng.uniform(0.95, 1.08)),
        "gamma": float(rng.uniform(0.9, 1.15)),
    }
    spec = StudySpec(index, seed, patient_id, study_index, n_studies, key, an, findings, labels, exposure)
    spec.report = make_report(spec, rng_for(seed, 3, index))
    return spec
