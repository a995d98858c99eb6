"""CheXpert reader: ``train.csv`` / ``valid.csv`` with uncertain (-1) labels and a frontal/lateral filter."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

from medgen.data.labels import CHEXPERT_LABELS, DATASET_LABEL_MAPS
from medgen.data.readers._common import (
    choose,
    find_first,
    label_vector,
    new_collector,
    read_csv_rows,
    require_dir,
    resolve_labels,
)

LAYOUT = """  <dataset_dir>/                  (CheXpert-v1.0 or CheXpert-v1.0-small)
    train.csv, valid.csv
    train/patient00001/study1/view1_frontal.jpg ...
    valid/patient64541/study1/view1_frontal.jpg ..."""
EXPECTED_HEADER = (
    "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,"
    "Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,"
    "Fracture,Support Devices"
)
# CSV column (CheXpert spelling) for each canonical label, in CHEXPERT_LABELS order
_COLUMN = {canon: col for col, canon in DATASET_LABEL_MAPS["chexpert"].items()}
UNCERTAINTY_POLICIES = ("ones", "zeros", "ignore")
_PATIENT = re.compile(r"(patient\d+)")


def _value(cell: str, policy: str, blank: float) -> float:
    """CheXpert label cell -> float: 1 / 0 as is, -1 by ``policy``, blank (not mentioned) -> ``blank``."""
    if cell == "":
        return blank
    v = float(cell)
    if v == -1.0:
        return {"ones": 1.0, "zeros": 0.0, "ignore": math.nan}[policy]
    if v in (0.0, 1.0):
        return v
    raise ValueError(cell)


def _resolve_image(root: Path, rel: str, check: bool) -> str:
    """CSV paths start with the release folder (``CheXpert-v1.0-small/train/...``); accept ``root`` being
    that folder or its parent. Without ``check`` no file is touched (string joins: fast on 200k rows)."""
    first, _, rest = rel.partition("/")
    inside = os.path.join(root, rest or first)
    if not check:
        return inside if first == root.name else os.path.join(root, rel)
    for cand in (inside, os.path.join(root, rel), os.path.join(root.parent, rel)):
        if os.path.isfile(cand):
            return cand
    return inside


def read_chexpert(
    root: str | Path,
    split: str = "train",
    labels: Sequence[str] | None = None,
    uncertainty: str = "ignore",
    blank: float = 0.0,
    views: Sequence[str] | None = ("Frontal",),
    check_files: bool = True,
    on_error: str = "raise",
    skip_report: str | Path | None = None,
) -> list[dict]:
    """Items for CheXpert, one per image.

    Args:
        root: the release folder holding ``train.csv`` / ``valid.csv``.
        split: ``"train"`` or ``"valid"`` (the CSV read).
        labels: label list of ``label`` (canonical); default ``CHEXPERT_LABELS`` ("Pleural Effusion" is
            "Effusion"). Labels CheXpert lacks (e.g. "Mass") are NaN, ``label_mask`` 0.
        uncertainty: what -1 (uncertain) becomes: ``"ones"`` (U-Ones), ``"zeros"`` (U-Zeros) or
            ``"ignore"`` (NaN, ``label_mask`` 0, so a masked loss skips it).
        blank: value of a blank cell (finding not mentioned); 0 by convention, NaN to mask it too.
        views: keep these ``Frontal/Lateral`` values; ``None`` keeps all.
        check_files: report images that do not exist (all in one error).
        on_error: ``"raise"`` or ``"skip"`` bad rows/images (skip list written to ``skip_report``).
        skip_report: where the skip list goes.

    Returns:
        dicts with ``image``, ``label``, ``label_mask``, ``labels`` (the names), ``patient_id``
        (``patientNNNNN`` from the path), ``study``, ``sex``, ``age``, ``view`` (Frontal/Lateral), ``projection``
        (AP/PA), ``no_finding``.
    """
    root = require_dir(root, "chexpert")
    split = choose(split, ("train", "valid"), "split")
    uncertainty = choose(uncertainty, UNCERTAINTY_POLICIES, "uncertainty")
    labels = resolve_labels(labels, CHEXPERT_LABELS)
    csv_path = find_first(root, [f"{split}.csv"], "chexpert", LAYOUT)
    collector = new_collector("chexpert", root, on_error, skip_report)
    required = ["Path", "Frontal/Lateral", *(_COLUMN[c] for c in CHEXPERT_LABELS)]
    items: list[dict] = []
    for line, row in read_csv_rows(csv_path, required, EXPECTED_HEADER, collector):
        if views is not None and row["Frontal/Lateral"] not in views:
            continue
        where = f"{csv_path}:{line}"
        match = _PATIENT.search(row["Path"])
        if match is None:
            collector.add(
                where, f"Path {row['Path']!r} has no patientNNNNN folder to take the patient id from"
            )
            continue
        values, bad = {}, []
        for canon in CHEXPERT_LABELS:
            try:
                values[canon] = _value(row[_COLUMN[canon]], uncertainty, blank)
            except ValueError:
                bad.append(f"{_COLUMN[canon]}={row[_COLUMN[canon]]!r}")
        if bad:
            collector.add(where, f"label(s) out of range {bad}; allowed: 1, 0, -1 or blank")
            continue
        image = _resolve_image(root, row["Path"], check_files)
        if check_files and not os.path.isfile(image):
            collector.add(image, f"image listed in {csv_path.name} line {line} does not exist")
            continue
        label, mask = label_vector(values, labels, known=set(CHEXPERT_LABELS))
        study = re.search(r"(study\d+)", row["Path"])
        item = {
            "image": image,
            "label": label,
            "label_mask": mask,
            "labels": list(labels),
            "patient_id": match.group(1),
            "study": f"{match.group(1)}/{study.group(1)}" if study else match.group(1),
            "view": row["Frontal/Lateral"],
            "projection": row.get("AP/PA", ""),
            "sex": row.get("Sex", ""),
            "no_finding": row.get("No Finding", "") in ("1", "1.0"),
        }
        try:
            if row.get("Age"):
                item["age"] = float(row["Age"])
        except ValueError:
            collector.add(where, f"Age {row['Age']!r} is not a number")
            continue
        items.append(item)
    collector.finish()
    return items
