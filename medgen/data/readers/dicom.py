"""Generic DICOM folder reader: one item per image series, grouped by ``SeriesInstanceUID``.

The folder is walked once and every header is checked; every non-DICOM, unreadable or non-image file is
reported in one error (or skipped with ``on_error="skip"``, the list written to ``skip_report``). Files
matching ``ignore`` (``DICOMDIR``, sidecars, hidden files) are passed over by design: the patterns are an
argument, so nothing is left out that the caller cannot see.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medgen.data.readers._common import SIDECAR_PATTERNS, new_collector, require_dir, walk_files

DICOM_IGNORE = ("DICOMDIR", *SIDECAR_PATTERNS)


def _slice_order(ds) -> tuple:
    """Sort key of one slice: position along the slice normal, else InstanceNumber."""
    pos, ori = ds.get("ImagePositionPatient"), ds.get("ImageOrientationPatient")
    if pos is not None and ori is not None and len(ori) == 6:
        normal = np.cross(np.asarray(ori[:3], float), np.asarray(ori[3:], float))
        return (0, float(np.dot(normal, np.asarray(pos, float))))
    number = ds.get("InstanceNumber")
    return (1, float(number) if number is not None else 0.0)


def read_dicom_folder(
    root: str | Path,
    ignore: Sequence[str] = DICOM_IGNORE,
    on_error: str = "raise",
    skip_report: str | Path | None = None,
) -> list[dict]:
    """Items for every DICOM image series under ``root``, grouped by ``SeriesInstanceUID``.

    Headers only are read (``stop_before_pixels``), so scanning is fast and pixel decoding problems show up
    at load time (MONAI ``LoadImage`` with ``PydicomReader`` / ``ITKReader``).

    Args:
        root: folder searched recursively.
        ignore: ``fnmatch`` patterns of file names that are not images (default: ``DICOMDIR`` and common
            sidecars/hidden files).
        on_error: ``"raise"`` one error listing every non-DICOM, unreadable or non-image file, or
            ``"skip"`` them (list written to ``skip_report`` and logged).
        skip_report: where the skip list goes.

    Returns:
        dicts with ``image`` (the file for a one-file series; the series folder when it holds only that
        series; else the slice files sorted along the slice normal), ``n_files``, ``patient_id``,
        ``study_uid``, ``series_uid``, ``modality``, ``series_description``. Patient tags stay in the items
        for splitting; never log them.
    """
    import pydicom  # a core dependency, imported on use so that `import medgen.data.readers` stays light
    import pydicom.errors

    root = require_dir(root, "dicom_folder")
    collector = new_collector("dicom_folder", root, on_error, skip_report)
    series: dict[str, list[tuple[tuple, Path, object]]] = defaultdict(list)
    for path in walk_files(root, ignore):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except pydicom.errors.InvalidDicomError:
            collector.add(
                path, "not a DICOM file (no 'DICM' preamble); move it out or add its pattern to ignore"
            )
            continue
        except Exception as exc:  # truncated or malformed files: report pydicom's reason
            collector.add(path, f"unreadable DICOM ({type(exc).__name__}: {exc})")
            continue
        if "Rows" not in ds or "Columns" not in ds:
            collector.add(
                path,
                f"no Rows/Columns: a non-image object (Modality {ds.get('Modality', '?')}, SOP class "
                f"{ds.get('SOPClassUID', '?')}) or a truncated file; move it out or add it to ignore",
            )
            continue
        if not ds.get("SeriesInstanceUID"):
            collector.add(path, "no SeriesInstanceUID; cannot group slices into a series")
            continue
        if not str(ds.get("PatientID", "")).strip():
            collector.add(path, "empty PatientID; patient-level splits need it (set it, pseudonymised)")
            continue
        series[str(ds.SeriesInstanceUID)].append((_slice_order(ds), path, ds))
    collector.finish()
    per_dir: dict[Path, set[str]] = defaultdict(set)
    for uid, slices in series.items():
        for _, path, _ in slices:
            per_dir[path.parent].add(uid)
    items = []
    for uid in sorted(series):
        slices = sorted(series[uid], key=lambda s: (s[0], str(s[1])))
        files = [str(p) for _, p, _ in slices]
        folders = {Path(f).parent for f in files}
        if len(files) == 1:
            image: str | list[str] = files[0]
        elif len(folders) == 1 and per_dir[next(iter(folders))] == {uid}:
            image = str(next(iter(folders)))
        else:
            image = files
        ds = slices[0][2]
        items.append(
            {
                "image": image,
                "n_files": len(files),
                "patient_id": str(ds.PatientID).strip(),
                "study_uid": str(ds.get("StudyInstanceUID", "")),
                "series_uid": uid,
                "modality": str(ds.get("Modality", "")),
                "series_description": str(ds.get("SeriesDescription", "")),
            }
        )
    return items
