"""Radiology-style reports for phantom studies: FINDINGS and IMPRESSION with varied phrasing.

Present findings are named with side, location and size; a random subset of absent ones is negated
("No pleural effusion or pneumothorax."). Positive and negative statements never share a sentence, which
keeps the text unambiguous for :mod:`medgen.data.phantom.extractor` without making it formulaic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from medgen.data.phantom.findings import LOBES, Finding

if TYPE_CHECKING:
    from medgen.data.phantom.study import StudySpec


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _cm(mm: float) -> str:
    return f"{mm / 10.0:.1f} cm"


def describe(f: Finding, rng: np.random.Generator, ctr: float) -> tuple[str, str]:
    """(sentence for FINDINGS, short phrase for IMPRESSION) of one present finding."""
    side, zone = f.side, f.zone
    where = f"{side} {zone} zone" if side in ("right", "left") and zone else ""
    if f.name == "Cardiomegaly":
        sev = {"mild": "mildly", "moderate": "moderately", "marked": "markedly"}[f.severity]
        s = _pick(
            rng,
            [
                f"The heart is {sev} enlarged, with a cardiothoracic ratio of {ctr:.2f}.",
                f"There is {f.severity} cardiomegaly (cardiothoracic ratio {ctr:.2f}).",
                f"The cardiac silhouette is {sev} enlarged.",
                f"{_cap(f.severity)} cardiomegaly.",
            ],
        )
        return s, _pick(rng, [f"{_cap(f.severity)} cardiomegaly.", "Cardiomegaly.", "Enlarged heart."])
    if f.name == "Enlarged Cardiomediastinum":
        s = _pick(
            rng,
            [
                f"The superior mediastinum is widened, measuring {f.size_mm:.1f} cm.",
                "There is widening of the superior mediastinum.",
                f"The mediastinum is widened ({f.size_mm:.1f} cm).",
            ],
        )
        return s, _pick(
            rng, ["Widened mediastinum.", "Mediastinal widening; consider CT for further assessment."]
        )
    if f.name == "Nodule":
        s = _pick(
            rng,
            [
                f"A {f.size_mm:.0f} mm {f.descriptor} nodule projects over the {where}.",
                f"There is a {_cm(f.size_mm)} {f.descriptor} nodule in the {where}.",
                f"{_cap(f.descriptor)} nodule in the {where} measuring {f.size_mm:.0f} mm.",
            ],
        )
        return s, _pick(
            rng,
            [f"{_cap(side)} {zone} zone nodule; recommend CT.", f"{f.size_mm:.0f} mm nodule in the {where}."],
        )
    if f.name == "Mass":
        s = _pick(
            rng,
            [
                f"A {_cm(f.size_mm)} {f.descriptor} mass is seen in the {where}.",
                f"There is a {f.descriptor} mass in the {where} measuring {_cm(f.size_mm)}.",
            ],
        )
        return s, _pick(
            rng,
            [
                f"{_cap(side)} {zone} zone mass, {_cm(f.size_mm)}; recommend CT.",
                f"{_cap(f.descriptor)} {side} lung mass.",
            ],
        )
    if f.name == "Effusion":
        sides = "bilateral" if side == "bilateral" else side
        plural = "effusions" if side == "bilateral" else "effusion"
        s = _pick(
            rng,
            [
                f"{_cap(f.severity)} {sides} pleural {plural} with a meniscus at the costophrenic angle.",
                f"There is a {f.severity} {sides} pleural {plural}.",
                f"Blunting of the {'costophrenic angles' if side == 'bilateral' else side + ' costophrenic angle'}"
                f" due to a {f.severity} {sides} pleural {plural}.",
            ],
        )
        s = s.replace(
            "There is a small bilateral pleural effusions", "There are small bilateral pleural effusions"
        )
        s = s.replace("There is a moderate bilateral", "There are moderate bilateral").replace(
            "There is a large bilateral", "There are large bilateral"
        )
        return s, f"{_cap(f.severity)} {sides} pleural {plural}."
    if f.name == "Pneumothorax":
        s = _pick(
            rng,
            [
                f"{_cap(f.severity)} {side} apical pneumothorax, with the visceral pleural line "
                f"{_cm(f.size_mm)} from the chest wall.",
                f"There is a {f.severity} {side} pneumothorax; no lung markings are seen beyond the "
                f"visceral pleural line.",
                f"A {f.severity} {side} pneumothorax is present.",
            ],
        )
        return s, _pick(
            rng, [f"{_cap(f.severity)} {side} pneumothorax.", f"{_cap(side)} pneumothorax, {f.severity}."]
        )
    if f.name == "Consolidation":
        lobe = LOBES[(side, zone)]
        s = _pick(
            rng,
            [
                f"Consolidation {f.descriptor} in the {lobe}."
                if f.descriptor.startswith("with")
                else f"{_cap(f.descriptor)} consolidation in the {lobe}.",
                f"There is airspace consolidation in the {lobe}"
                + (" with air bronchograms." if f.descriptor.startswith("with") else "."),
            ],
        )
        return s, _pick(
            rng, [f"{_cap(lobe)} consolidation, likely pneumonia.", f"Consolidation in the {lobe}."]
        )
    if f.name == "Lung Opacity":
        s = _pick(
            rng,
            [
                f"{_cap(f.descriptor)} opacity in the {where}.",
                f"There is a {f.descriptor} airspace opacity in the {where}.",
                f"{_cap(f.descriptor)} opacities are present in the {where}.",
            ],
        )
        return s, _pick(
            rng, [f"{_cap(side)} {zone} zone opacity.", f"{_cap(f.descriptor)} {side} lung opacity."]
        )
    if f.name == "Atelectasis":
        loc = _pick(rng, [f"{side} base", f"{side} lower zone", f"{side} lung base"])
        s = _pick(
            rng,
            [
                f"{_cap(f.descriptor)} atelectasis at the {loc}.",
                f"There is {f.descriptor} atelectasis in the {loc}.",
            ],
        )
        return s, _pick(rng, [f"{_cap(side)} basal atelectasis.", f"Atelectasis at the {side} base."])
    if f.name == "Edema":
        s = _pick(
            rng,
            [
                f"Bilateral perihilar haziness with Kerley B lines, consistent with {f.severity} pulmonary edema.",
                f"There is {f.severity} interstitial edema with perihilar predominance.",
                f"{_cap(f.severity)} pulmonary edema.",
            ],
        )
        return s, _pick(rng, [f"{_cap(f.severity)} pulmonary edema.", "Pulmonary edema."])
    raise ValueError(f"no report template for finding {f.name!r}")


NEGATIONS: dict[str, list[str]] = {
    "Effusion": ["No pleural effusion.", "There is no pleural effusion.", "No effusion is seen."],
    "Pneumothorax": [
        "No pneumothorax.",
        "There is no evidence of pneumothorax.",
        "Pneumothorax is not seen.",
    ],
    "Consolidation": ["No focal consolidation.", "There is no consolidation."],
    "Lung Opacity": ["No focal airspace opacity.", "No new opacity."],
    "Edema": ["No pulmonary edema.", "There is no evidence of edema."],
    "Nodule": ["No suspicious pulmonary nodule.", "No nodules are identified."],
    "Mass": ["No mass lesion.", "No lung mass is seen."],
    "Atelectasis": ["No atelectasis.", "No evidence of atelectasis."],
    "Cardiomegaly": ["The heart is not enlarged."],
    "Enlarged Cardiomediastinum": ["The mediastinum is not widened."],
}
PAIRED = [
    (
        "Effusion",
        "Pneumothorax",
        [
            "No pleural effusion or pneumothorax.",
            "No pneumothorax or pleural effusion.",
            "There is no pleural effusion or pneumothorax.",
        ],
    ),
    ("Nodule", "Mass", ["No suspicious nodule or mass.", "No pulmonary nodules or masses."]),
    (
        "Consolidation",
        "Edema",
        ["No consolidation or pulmonary edema.", "There is no focal consolidation or edema."],
    ),
]
ORDER = [
    "Cardiomegaly",
    "Enlarged Cardiomediastinum",
    "Mass",
    "Nodule",
    "Consolidation",
    "Lung Opacity",
    "Atelectasis",
    "Edema",
    "Effusion",
    "Pneumothorax",
]


def make_report(spec: StudySpec, rng: np.random.Generator) -> dict[str, str]:
    """FINDINGS and IMPRESSION text for a sampled study (``text`` joins both under their headings)."""
    present = {f.name: f for f in spec.findings}
    ordered = sorted(spec.findings, key=lambda f: ORDER.index(f.name))
    sentences: list[str] = []
    impressions: list[str] = []
    if "Cardiomegaly" not in present:
        sentences.append(
            _pick(
                rng,
                [
                    "Heart size is normal.",
                    "The cardiac silhouette is within normal limits.",
                    "Normal heart size.",
                    "The heart is not enlarged.",
                ],
            )
        )
    if "Enlarged Cardiomediastinum" not in present:
        sentences.append(
            _pick(
                rng,
                [
                    "The mediastinal contours are normal.",
                    "Mediastinal contours are unremarkable.",
                    "Normal cardiomediastinal contours.",
                ],
            )
        )
    for f in ordered:
        s, imp = describe(f, rng, spec.anatomy.ctr_target)
        sentences.append(s)
        impressions.append(imp)
    lung_findings = set(present) - {"Cardiomegaly", "Enlarged Cardiomediastinum"}
    if not lung_findings:
        sentences.append(
            _pick(
                rng,
                ["The lungs are clear.", "Both lungs are clear.", "The lungs are well expanded and clear."],
            )
        )
    absent = [
        k for k in ORDER if k not in present and k not in ("Cardiomegaly", "Enlarged Cardiomediastinum")
    ]
    negated: list[str] = []
    for a, b, options in PAIRED:
        if a in absent and b in absent and rng.random() < 0.6:
            negated.append(_pick(rng, options))
            absent.remove(a)
            absent.remove(b)
    for k in absent:
        if rng.random() < 0.35:
            negated.append(_pick(rng, NEGATIONS[k]))
    rng.shuffle(negated)
    sentences += negated
    sentences.append(
        _pick(
            rng,
            [
                "No acute osseous abnormality.",
                "The osseous structures are intact.",
                "Visualised bones are unremarkable.",
            ],
        )
    )
    findings_text = " ".join(sentences)
    if impressions:
        if len(impressions) > 1 and rng.random() < 0.5:
            impression = " ".join(f"{k + 1}) {s}" for k, s in enumerate(impressions))
        else:
            impression = " ".join(impressions)
    else:
        impression = _pick(
            rng,
            [
                "No acute cardiopulmonary abnormality.",
                "Normal chest radiograph.",
                "No acute cardiopulmonary process.",
            ],
        )
    return {
        "findings": findings_text,
        "impression": impression,
        "text": f"FINDINGS: {findings_text} IMPRESSION: {impression}",
    }
