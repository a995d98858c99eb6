"""MRNet knee MRI reader: one item per exam with the axial, coronal and sagittal volumes and three labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medgen.data.errors import DataError
from medgen.data.labels import MRNET_LABELS
from medgen.data.readers._common import choose, new_collector, read_csv_rows, require_dir

PLANES = ("axial", "coronal", "sagittal")
LAYOUT = """  <dataset_dir>/
    train-abnormal.csv, train-acl.csv, train-meniscus.csv   (no header: case,label)
    valid-abnormal.csv, valid-acl.csv, valid-meniscus.csv
    train/{axial,coronal,sagittal}/0000.npy ...   (S, 256, 256) uint8
    valid/{axial,coronal,sagittal}/1130.npy ..."""


def check_volume(path: Path, side: int = 256) -> str | None:
    """Why a ``.npy`` is not an MRNet volume (None when it is); reads the header only (memory map)."""
    try:
        vol = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # any unreadable file is reported, with numpy's reason
        return f"not a readable .npy ({type(exc).__name__}: {exc})"
    if vol.ndim != 3 or vol.shape[1:] != (side, side) or vol.shape[0] < 1:
        return f"shape {vol.shape}, expected (slices, {side}, {side})"
    if vol.dtype != np.uint8:
        return f"dtype {vol.dtype}, expected uint8"
    return None


def read_mrnet(
    root: str | Path,
    split: str = "train",
    image_plane: str = "sagittal",
    check_volumes: bool = True,
    on_error: str = "raise",
    skip_report: str | Path | None = None,
) -> list[dict]:
    """Items for MRNet, one per exam (case).

    MRNet does not publish patient ids; each case is treated as its own patient (the release has 1,370
    exams from 1,312 patients, so a few patients may span cases: say so when reporting results).

    Args:
        root: dataset folder (layout in ``docs/data.md``).
        split: ``"train"`` or ``"valid"``.
        image_plane: which plane's path is also stored under ``image``.
        check_volumes: open each volume's header and report wrong shape/dtype or unreadable files.
        on_error: ``"raise"`` or ``"skip"`` (skip list written to ``skip_report``).
        skip_report: where the skip list goes.

    Returns:
        dicts with ``axial``, ``coronal``, ``sagittal`` (paths), ``image`` (= ``image_plane``'s path),
        ``label``/``label_mask`` over ``MRNET_LABELS`` (abnormal, acl, meniscus), ``patient_id`` and ``case``.
    """
    root = require_dir(root, "mrnet")
    split = choose(split, ("train", "valid"), "split")
    image_plane = choose(image_plane, PLANES, "image_plane")
    collector = new_collector("mrnet", root, on_error, skip_report)
    labels: dict[str, dict[str, float]] = {}
    for task in MRNET_LABELS:
        path = root / f"{split}-{task}.csv"
        if not path.is_file():
            raise DataError(f"mrnet: {path} not found. Expected layout:\n{LAYOUT}")
        for line, row in read_csv_rows(
            path, ["case", "label"], "0000,0   (no header)", collector, header=False
        ):
            where = f"{path}:{line}"
            if not row["case"].isdigit() or row["label"] not in ("0", "1"):
                collector.add(where, f"row {row['case']},{row['label']}: expected 'NNNN,0' or 'NNNN,1'")
                continue
            labels.setdefault(f"{int(row['case']):04d}", {})[task] = float(row["label"])
    for plane in PLANES:
        folder = root / split / plane
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            if path.suffix != ".npy":
                collector.add(path, "unsupported file in a volume folder (expected NNNN.npy); move it out")
            elif path.stem not in labels:
                collector.add(path, f"volume has no row in {split}-*.csv; add its labels or move it out")
    items: list[dict] = []
    for case in sorted(labels):
        missing = [t for t in MRNET_LABELS if t not in labels[case]]
        if missing:
            collector.add(f"case {case}", f"no label in {[f'{split}-{t}.csv' for t in missing]}")
            continue
        paths = {plane: root / split / plane / f"{case}.npy" for plane in PLANES}
        bad = False
        for path in paths.values():
            why = "file not found" if not path.is_file() else check_volume(path) if check_volumes else None
            if why:
                collector.add(path, why)
                bad = True
        if bad:
            continue
        label = np.array([labels[case][t] for t in MRNET_LABELS], dtype=np.float32)
        items.append(
            {
                **{plane: str(path) for plane, path in paths.items()},
                "image": str(paths[image_plane]),
                "label": label,
                "label_mask": np.ones_like(label),
                "patient_id": case,
                "case": case,
            }
        )
    collector.finish()
    return items
