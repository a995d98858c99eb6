"""The one medgen label space and the names used by each dataset.

Canonical names follow NIH ChestX-ray14 spelling where NIH has the finding, CheXpert's otherwise.
Dataset readers map their own column names onto these through ``DATASET_LABEL_MAPS``.
"""

from __future__ import annotations

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
        | {"Enlarged Cardiomediastinum", "Lung Opacity", "Lung Lesion", "Fracture", "Support Devices", "Pleural Other"}
    )
)
