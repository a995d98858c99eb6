"""Tiny on-disk datasets in the real formats, written into a tmp folder for the reader and split tests."""

from __future__ import annotations

import csv
import gzip
import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

TXV_DATA = Path(importlib.util.find_spec("torchxrayvision").origin).parent / "data"  # no torch import

NIH_HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]"
)
BBOX_HEADER = "Image Index,Finding Label,Bbox [x,y,w,h],,,"
CHEXPERT_HEADER = (
    "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,"
    "Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,"
    "Fracture,Support Devices"
)


def write_png(path: Path, value: int = 0, size: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), value, dtype=np.uint8)).save(path)


def real_lines(name: str, n: int) -> list[str]:
    """Header + the first ``n`` rows of a CSV in the torchxrayvision wheel (format checks only)."""
    with gzip.open(TXV_DATA / name, "rt") as f:
        return [next(f).rstrip("\n") for _ in range(n + 1)]


# Patient id -> findings of each of its images (several images per patient, as in NIH).
NIH_PATIENTS: dict[int, list[str]] = {
    1: ["Cardiomegaly", "Cardiomegaly|Emphysema", "No Finding"],
    2: ["No Finding"],
    3: ["Effusion|Infiltration", "Mass", "Nodule|Mass", "No Finding"],
    4: ["Hernia"],
    5: ["Pneumothorax", "No Finding"],
    6: ["Atelectasis", "Atelectasis|Effusion"],
    7: ["No Finding", "Pleural_Thickening"],
    8: ["Fibrosis", "Edema", "Consolidation"],
}
NIH_TEST_PATIENTS = {3, 7}


def make_nih(root: Path, patients: dict[int, list[str]] = NIH_PATIENTS, age_style: str = "int") -> Path:
    """Data_Entry_2017.csv, official lists, boxes and PNGs under ``images_001/images`` / ``images_002/images``."""
    root.mkdir(parents=True, exist_ok=True)
    rows, train_val, test = [NIH_HEADER], [], []
    for pid, findings in patients.items():
        for k, finding in enumerate(findings):
            name = f"{pid:08d}_{k:03d}.png"
            age = f"{40 + k:03d}Y" if age_style == "Y" else str(40 + k)
            rows.append(f"{name},{finding},{k},{pid},{age},M,PA,2048,2500,0.143,0.143")
            write_png(root / f"images_00{1 + pid % 2}" / "images" / name, pid)
            (test if pid in NIH_TEST_PATIENTS else train_val).append(name)
    (root / "Data_Entry_2017.csv").write_text("\n".join(rows) + "\n")
    (root / "train_val_list.txt").write_text("\n".join(train_val) + "\n")
    (root / "test_list.txt").write_text("\n".join(test) + "\n")
    (root / "BBox_List_2017.csv").write_text(
        "\n".join(
            [
                BBOX_HEADER,
                "00000003_000.png,Infiltrate,10.5,20.0,30.0,40.0",
                "00000003_000.png,Effusion,1,2,3,4",
                "00000001_000.png,Cardiomegaly,100,200,300,400",
            ]
        )
        + "\n"
    )
    return root


def chexpert_row(
    path: str, values: dict[str, str], view: str = "Frontal", sex: str = "Female", age: str = "60"
) -> str:
    cols = CHEXPERT_HEADER.split(",")
    cells = {
        "Path": path,
        "Sex": sex,
        "Age": age,
        "Frontal/Lateral": view,
        "AP/PA": "AP" if view == "Frontal" else "",
    }
    return ",".join(values.get(c, cells.get(c, "")) for c in cols)


def make_mrnet(
    root: Path, cases: dict[str, tuple[int, int, int]], split: str = "train", slices: int = 2
) -> Path:
    """``{split}/{plane}/NNNN.npy`` volumes of shape (slices, 256, 256) uint8 and the three label CSVs."""
    for t, task in enumerate(("abnormal", "acl", "meniscus")):
        (root / f"{split}-{task}.csv").parent.mkdir(parents=True, exist_ok=True)
        (root / f"{split}-{task}.csv").write_text(
            "".join(f"{c},{labels[t]}\n" for c, labels in cases.items())
        )
    for case in cases:
        for plane in ("axial", "coronal", "sagittal"):
            (root / split / plane).mkdir(parents=True, exist_ok=True)
            np.save(
                root / split / plane / f"{case}.npy", np.full((slices, 256, 256), int(case) % 256, np.uint8)
            )
    return root


INDIANA_REPORTS = [
    # uid, MeSH, Problems, image, indication, comparison, findings, impression
    (
        "1",
        "normal",
        "normal",
        "Xray Chest PA and Lateral",
        "Positive TB test",
        "None.",
        "The cardiac silhouette and mediastinum size are within normal limits.",
        "Normal chest x-XXXX.",
    ),
    (
        "2",
        "Cardiomegaly/borderline;Pulmonary Artery/enlarged",
        "Cardiomegaly;Pulmonary Artery",
        "Chest, 2 views",
        "XXXX-year-old male",
        "XXXX, XXXX.",
        "Borderline cardiomegaly. Clear lung XXXX bilaterally.",
        "No acute disease.",
    ),
    (
        "3",
        "Opacity/lung/base/left;Pleural Effusion/left;Thickening/pleura",
        "Opacity;Pleural Effusion",
        "PA and lateral",
        "dyspnea",
        "",
        "",
        "Left basilar opacity and small effusion.",
    ),
]
INDIANA_PROJECTIONS = [
    ("1", "1_IM-0001-4001.dcm.png", "Frontal"),
    ("1", "1_IM-0001-3001.dcm.png", "Lateral"),
    ("2", "2_IM-0652-1001.dcm.png", "Frontal"),
    ("2", "2_IM-0652-2001.dcm.png", "Lateral"),
    ("3", "3_IM-1384-1001.dcm.png", "Frontal"),
    ("3", "3_IM-1384-1002.dcm.png", "Frontal"),
]


def make_indiana_kaggle(root: Path, size: int = 8) -> Path:
    """The Kaggle Indiana layout (indiana_reports.csv, indiana_projections.csv, images/images_normalized/*.png)
    of ``INDIANA_REPORTS`` / ``INDIANA_PROJECTIONS``, with ``size``-pixel PNGs."""
    root.mkdir(parents=True)
    with open(root / "indiana_reports.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["uid", "MeSH", "Problems", "image", "indication", "comparison", "findings", "impression"])
        w.writerows(INDIANA_REPORTS)
    with open(root / "indiana_projections.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["uid", "filename", "projection"])
        w.writerows(INDIANA_PROJECTIONS)
    for i, (_, name, _) in enumerate(INDIANA_PROJECTIONS):
        write_png(root / "images" / "images_normalized" / name, value=10 * i, size=size)
    return root
