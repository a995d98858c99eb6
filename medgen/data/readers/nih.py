"""NIH ChestX-ray14 reader: ``Data_Entry_2017.csv`` labels, official split lists and bounding boxes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medgen.data.errors import DataError
from medgen.data.labels import DATASET_LABEL_MAPS, NIH_LABELS
from medgen.data.readers._common import (
    find_first,
    index_files,
    label_vector,
    new_collector,
    read_csv_rows,
    require_dir,
    resolve_labels,
)
from medgen.data.split import assert_no_patient_leak, patient_split

LAYOUT = """  <dataset_dir>/
    Data_Entry_2017.csv            (or Data_Entry_2017_v2020.csv)
    train_val_list.txt, test_list.txt   (official split; optional unless split= is used)
    BBox_List_2017.csv             (optional; with_boxes=True)
    images/*.png  or  images_001/images/*.png ... images_012/images/*.png"""
ENTRY_HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]"
)
BBOX_HEADER = "Image Index,Finding Label,Bbox [x,y,w,h]"
_NIH_MAP = DATASET_LABEL_MAPS["nih"]


def read_nih_boxes(path: str | Path) -> dict[str, list[dict]]:
    """Read ``BBox_List_2017.csv``: image name -> list of ``{"label", "box": [x, y, w, h]}`` (pixels of the
    1024x1024 image, canonical label names, e.g. the file's "Infiltrate" becomes "Infiltration")."""
    path = Path(path)
    collector = new_collector("nih_boxes", path.parent, "raise", None)
    boxes: dict[str, list[dict]] = {}
    for line, row in read_csv_rows(
        path, ["Image Index", "Finding Label", "Bbox [x,y,w,h]"], BBOX_HEADER, collector
    ):
        label = _NIH_MAP.get(row["Finding Label"])
        try:
            box = [float(v) for v in row["Bbox [x,y,w,h]"]]
        except ValueError:
            box = []
        if label is None:
            collector.add(
                f"{path}:{line}", f"unknown finding {row['Finding Label']!r}; expected one of {NIH_LABELS}"
            )
        elif len(box) != 4 or box[2] <= 0 or box[3] <= 0:
            collector.add(
                f"{path}:{line}", f"box {row['Bbox [x,y,w,h]']} is not 4 numbers x, y, w > 0, h > 0"
            )
        else:
            boxes.setdefault(row["Image Index"], []).append({"label": label, "box": box})
    collector.finish()
    return boxes


def _age(text: str) -> float:
    """Ages are integers in the 2020 file and ``058Y``-style strings in early releases."""
    text = text.strip().upper()
    if text.endswith("Y"):
        text = text[:-1]
    return float(text)


def read_nih_cxr14(
    root: str | Path,
    labels: Sequence[str] | None = None,
    split: str | None = None,
    views: Sequence[str] | None = None,
    with_boxes: bool = False,
    only_with_boxes: bool = False,
    check_files: bool = True,
    on_error: str = "raise",
    skip_report: str | Path | None = None,
) -> list[dict]:
    """Items for NIH ChestX-ray14, one per image.

    Args:
        root: dataset folder (layout in ``docs/data.md``).
        labels: label list of the ``label`` vector (canonical names); default ``NIH_LABELS``. Labels NIH
            does not grade (e.g. "Fracture") are NaN with ``label_mask`` 0.
        split: ``None`` (all images), ``"train_val"`` or ``"test"`` (the official lists). For a
            patient-level validation carve-out use :func:`nih_official_split`.
        views: keep only these ``View Position`` values (``("PA", "AP")``); ``None`` keeps all.
        with_boxes: add ``boxes`` (list of ``{"label", "box"}``) from ``BBox_List_2017.csv`` (variable
            length: use a list-aware collate or batch size 1).
        only_with_boxes: keep only the ~880 images that have boxes (implies ``with_boxes``).
        check_files: report images missing from ``images/`` (all of them, in one error).
        on_error: ``"raise"`` or ``"skip"`` (see :class:`medgen.data.errors.ProblemCollector`).
        skip_report: where the skip list goes with ``on_error="skip"``.

    Returns:
        dicts with ``image`` (path), ``label``/``label_mask`` (float32 over ``labels``), ``labels`` (the
        names), ``patient_id``, ``image_id``, ``follow_up``, ``age``, ``sex``, ``view``, ``original_size`` (w, h),
        ``pixel_spacing`` (x, y), ``no_finding`` and optionally ``boxes``.
    """
    root = require_dir(root, "nih_cxr14")
    labels = resolve_labels(labels, NIH_LABELS)
    csv_path = find_first(root, ["Data_Entry_2017.csv", "Data_Entry_2017_v2020.csv"], "nih_cxr14", LAYOUT)
    collector = new_collector("nih_cxr14", root, on_error, skip_report)
    wanted: set[str] | None = None
    if split is not None:
        lists = {"train_val": "train_val_list.txt", "test": "test_list.txt"}
        if split not in lists:
            raise ValueError(f"nih_cxr14: split={split!r} is not supported; use None, 'train_val' or 'test'.")
        wanted = set(_read_list(find_first(root, [lists[split]], "nih_cxr14", LAYOUT)))
    boxes: dict[str, list[dict]] = {}
    if with_boxes or only_with_boxes:
        boxes = read_nih_boxes(find_first(root, ["BBox_List_2017.csv"], "nih_cxr14 (with_boxes)", LAYOUT))
    index, duplicates = index_files(root, (".png",)) if check_files else ({}, [])
    for dup in duplicates:
        collector.add(dup, "the same image name is in two folders; keep one copy")

    required = ["Image Index", "Finding Labels", "Patient ID"] + (
        ["View Position"] if views is not None else []
    )
    items: list[dict] = []
    in_csv: set[str] = set()
    for line, row in read_csv_rows(csv_path, required, ENTRY_HEADER, collector):
        name = row["Image Index"]
        in_csv.add(name)
        if wanted is not None and name not in wanted:
            continue
        if only_with_boxes and name not in boxes:
            continue
        if views is not None and row["View Position"] not in views:
            continue
        where = f"{csv_path}:{line}"
        findings = [f.strip() for f in row["Finding Labels"].split("|") if f.strip()]
        unknown = [f for f in findings if f != "No Finding" and f not in _NIH_MAP]
        if unknown or not findings:
            collector.add(
                where,
                f"Finding Labels {row['Finding Labels']!r}: unknown {unknown or '(empty)'}; "
                f"expected '|'-separated names from {NIH_LABELS} or 'No Finding'",
            )
            continue
        if "No Finding" in findings and len(findings) > 1:
            collector.add(where, f"Finding Labels {row['Finding Labels']!r} mixes 'No Finding' with findings")
            continue
        image = index.get(name)
        if check_files and image is None:
            collector.add(name, f"image listed in {csv_path.name} line {line} not found under {root}")
            continue
        if not row["Patient ID"]:
            collector.add(where, "empty Patient ID")
            continue
        label, mask = label_vector(
            {_NIH_MAP[f]: 1.0 for f in findings if f != "No Finding"}, labels, known=set(NIH_LABELS)
        )
        item = {
            "image": str(image if image is not None else root / "images" / name),
            "label": label,
            "label_mask": mask,
            "labels": list(labels),
            "patient_id": str(int(row["Patient ID"])) if row["Patient ID"].isdigit() else row["Patient ID"],
            "image_id": name,
            "no_finding": findings == ["No Finding"],
        }
        try:
            item.update(_extras(row))
        except (ValueError, IndexError) as exc:
            collector.add(where, f"unreadable metadata ({exc}); expected numbers in age/size/spacing columns")
            continue
        if with_boxes or only_with_boxes:
            item["boxes"] = boxes.get(name, [])
        items.append(item)
    if wanted is not None:
        for name in sorted(wanted - in_csv):
            collector.add(
                name, f"in the {split} list but not in {csv_path.name}; use the lists of this release"
            )
    collector.finish()
    return items


def _extras(row: dict) -> dict:
    out: dict = {}
    if row.get("Follow-up #"):
        out["follow_up"] = int(row["Follow-up #"])
    if row.get("Patient Age"):
        out["age"] = _age(row["Patient Age"])
    if "Patient Gender" in row:
        out["sex"] = row["Patient Gender"]
    if "View Position" in row:
        out["view"] = row["View Position"]
    size = row.get("OriginalImage[Width,Height]")
    if size:
        out["original_size"] = np.array([int(float(v)) for v in size[:2]], dtype=np.int64)
    spacing = row.get("OriginalImagePixelSpacing[x,y]")
    if spacing:
        out["pixel_spacing"] = np.array([float(v) for v in spacing[:2]], dtype=np.float32)
    return out


def _read_list(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


def nih_official_split(
    items: list[dict], root: str | Path, val_fraction: float = 0.1, seed: int = 0
) -> tuple[list[dict], list[dict], list[dict]]:
    """The official NIH split (``train_val_list.txt`` / ``test_list.txt``) with a patient-level validation
    carve-out from train_val.

    Args:
        items: output of :func:`read_nih_cxr14` (any filtering already applied).
        root: dataset folder holding the two list files.
        val_fraction: share of train_val images (by whole patients) moved to validation.
        seed: seed of the carve-out.

    Returns:
        ``(train, val, test)``, checked with :func:`medgen.data.split.assert_no_patient_leak`.

    Raises:
        DataError: an item is in neither list (the lists do not belong to this CSV).
    """
    root = Path(root)
    train_val = set(_read_list(find_first(root, ["train_val_list.txt"], "nih_official_split", LAYOUT)))
    test_names = set(_read_list(find_first(root, ["test_list.txt"], "nih_official_split", LAYOUT)))
    orphans = [
        it["image_id"] for it in items if it["image_id"] not in train_val and it["image_id"] not in test_names
    ]
    if orphans:
        raise DataError(
            f"nih_official_split: {len(orphans)} image(s) are in neither train_val_list.txt nor test_list.txt "
            f"in {root}: {orphans[:20]}{' ...' if len(orphans) > 20 else ''}. Use the lists that ship with "
            f"this Data_Entry CSV."
        )
    pool = [it for it in items if it["image_id"] in train_val]
    test = [it for it in items if it["image_id"] in test_names]
    train, val = patient_split(pool, fractions=(1.0 - val_fraction, val_fraction), seed=seed)
    assert_no_patient_leak(train, val, test, names=("train", "val", "test"))
    return train, val, test
