"""The one medgen label space and the names used by each dataset.

Canonical names follow NIH ChestX-ray14 spelling where NIH has the finding, CheXpert's otherwise.
Dataset readers map their own column names onto these through ``DATASET_LABEL_MAPS``.
"""

from __future__ import annotations

from collections.abc import Sequence

# Findings the phantom renders with pixel masks (order is the label-vector order for phantom data).
PHANTOM_LABELS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Effusion",
    "Enlarged Cardiomediastinum",
    "Lung Opacity",
    "Mass",
    "Nodule",
    "Pneumothorax",
)

NIH_LABELS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Effusion",
    "Emphysema",
    "Fibrosis",
    "Hernia",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pleural_Thickening",
    "Pneumonia",
    "Pneumothorax",
)

# Union label space (canonical spelling).
ALL_LABELS: tuple[str, ...] = tuple(
    sorted(
        set(NIH_LABELS)
        | set(PHANTOM_LABELS)
        | {
            "Enlarged Cardiomediastinum",
            "Lung Opacity",
            "Lung Lesion",
            "Fracture",
            "Support Devices",
            "Pleural Other",
        }
    )
)

# CheXpert's 13 finding columns in CSV order, canonical spelling ("Pleural Effusion" -> "Effusion").
# "No Finding" is not a finding: readers keep it as the item's ``no_finding`` extra.
CHEXPERT_LABELS: tuple[str, ...] = (
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)

# MRNet knee MRI exam labels (one CSV each: train-abnormal.csv, train-acl.csv, train-meniscus.csv).
MRNET_LABELS: tuple[str, ...] = ("abnormal", "acl", "meniscus")

# Dataset name -> {dataset's own label name -> canonical name}. Names already canonical map to themselves.
# Indiana keys are MeSH major headings (the part before the first "/"); several headings can map to one
# canonical finding (e.g. "Emphysema" and "Pulmonary Emphysema"). Headings without a chest-finding
# equivalent in ALL_LABELS (e.g. "Calcified Granuloma", "Scoliosis") are deliberately left out.
DATASET_LABEL_MAPS: dict[str, dict[str, str]] = {
    "phantom": {name: name for name in PHANTOM_LABELS},
    "nih": {
        **{name: name for name in NIH_LABELS},
        "Infiltrate": "Infiltration",  # BBox_List_2017.csv spells it this way
        "Pleural Thickening": "Pleural_Thickening",
    },
    "chexpert": {
        **{name: name for name in CHEXPERT_LABELS if name != "Effusion"},
        "Pleural Effusion": "Effusion",
    },
    "indiana": {
        "Cardiomegaly": "Cardiomegaly",
        "Pulmonary Atelectasis": "Atelectasis",
        "Atelectasis": "Atelectasis",
        "Pleural Effusion": "Effusion",
        "Pulmonary Edema": "Edema",
        "Edema": "Edema",
        "Opacity": "Lung Opacity",
        "Airspace Disease": "Lung Opacity",
        "Consolidation": "Consolidation",
        "Infiltrate": "Infiltration",
        "Pneumonia": "Pneumonia",
        "Pneumothorax": "Pneumothorax",
        "Nodule": "Nodule",
        "Mass": "Mass",
        "Emphysema": "Emphysema",
        "Pulmonary Emphysema": "Emphysema",
        "Pulmonary Fibrosis": "Fibrosis",
        "Hernia, Hiatal": "Hernia",
        "Fractures, Bone": "Fracture",
        "Catheters, Indwelling": "Support Devices",
        "Implanted Medical Device": "Support Devices",
        "Medical Device": "Support Devices",
        "Tube, Inserted": "Support Devices",
        "Surgical Instruments": "Support Devices",
        "Stents": "Support Devices",
    },
}


def canonical_label(name: str, dataset: str | None = None) -> str:
    """The canonical spelling of one dataset's label name.

    Args:
        name: a label name as a dataset spells it (``"Pleural Effusion"``) or already canonical.
        dataset: a key of ``DATASET_LABEL_MAPS``; ``None`` searches every map (names are unambiguous across
            them).

    Raises:
        KeyError: the name is neither canonical nor known to the map(s), naming the closest matches.
    """
    if dataset is not None:
        if dataset not in DATASET_LABEL_MAPS:
            raise KeyError(f"unknown dataset {dataset!r}; known: {', '.join(sorted(DATASET_LABEL_MAPS))}")
        maps = [DATASET_LABEL_MAPS[dataset]]
    else:
        maps = list(DATASET_LABEL_MAPS.values())
    for table in maps:
        if name in table:
            return table[name]
    if name in ALL_LABELS or name in MRNET_LABELS:
        return name
    import difflib

    known = sorted(set(ALL_LABELS).union(*[set(t) for t in maps]))
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise KeyError(f"label {name!r} is not in the medgen label space.{hint} Add it to DATASET_LABEL_MAPS.")


def project_labels(vector, source: Sequence[str], target: Sequence[str], fill: float = float("nan")):
    """Re-express label vector(s) over ``source`` names as vector(s) over ``target`` names.

    Names on both sides are canonicalised first, so ``source`` may use a dataset's own spelling. A target
    label that the source does not have gets ``fill`` (NaN by default: *unknown*, not *absent*, so a loss can
    mask it). Several source names mapping to one canonical name combine with a NaN-ignoring maximum.

    Args:
        vector: array of shape ``(..., len(source))``; a numpy array or torch tensor (the result has the
            same type, float32).
        source: label names of the last axis of ``vector``.
        target: label names of the last axis of the result.
        fill: value for target labels absent from ``source``.

    Raises:
        ValueError: the last axis does not match ``len(source)``.
    """
    import numpy as np

    is_torch = type(vector).__module__.startswith("torch")
    arr = np.asarray(vector.detach().cpu().numpy() if is_torch else vector, dtype=np.float32)
    if arr.shape[-1:] != (len(source),):
        raise ValueError(
            f"label vector has shape {arr.shape} but source lists {len(source)} labels; pass the label list the "
            f"vector was made with"
        )
    src = [canonical_label(s) for s in source]
    out = np.full(arr.shape[:-1] + (len(target),), fill, dtype=np.float32)
    for j, name in enumerate(canonical_label(t) for t in target):
        cols = [i for i, s in enumerate(src) if s == name]
        if len(cols) == 1:
            out[..., j] = arr[..., cols[0]]
        elif cols:
            vals = arr[..., cols]
            known = ~np.isnan(vals)
            out[..., j] = np.where(known.any(-1), np.where(known, vals, -np.inf).max(-1), np.nan)
    if is_torch:
        import torch

        return torch.from_numpy(out).to(vector.device)
    return out
