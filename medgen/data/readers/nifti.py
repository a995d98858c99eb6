"""Generic NIfTI folder reader: one item per ``.nii`` / ``.nii.gz`` file, each header opened and checked.

Every unreadable or non-NIfTI file is reported in one error (or skipped with ``on_error="skip"``, the list
written to ``skip_report``). Files matching ``ignore`` (JSON sidecars, ``.bval``/``.bvec``, hidden files) are
passed over by design; the patterns are an argument.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

from medgen.data.readers._common import SIDECAR_PATTERNS, choose, new_collector, require_dir, walk_files

NIFTI_SUFFIXES = (".nii", ".nii.gz")
_BIDS_SUBJECT = re.compile(r"^sub-[A-Za-z0-9]+$")


def _nifti_patient(path: Path, root: Path, rule: str | Callable[[Path], str]) -> str:
    if callable(rule):
        return str(rule(path))
    rel = path.relative_to(root)
    if rule == "auto":
        subject = [p for p in rel.parts[:-1] if _BIDS_SUBJECT.match(p)]
        rule = "bids" if subject else "folder" if len(rel.parts) > 1 else "file"
    if rule == "bids":
        subject = [p for p in rel.parts if _BIDS_SUBJECT.match(p)]
        return subject[0] if subject else ""
    if rule == "folder":
        return rel.parts[0] if len(rel.parts) > 1 else ""
    name = path.name
    return name[: -len(".nii.gz")] if name.endswith(".nii.gz") else path.stem


def read_nifti_folder(
    root: str | Path,
    patient_id: str | Callable[[Path], str] = "auto",
    ignore: Sequence[str] = SIDECAR_PATTERNS,
    on_error: str = "raise",
    skip_report: str | Path | None = None,
) -> list[dict]:
    """Items for every NIfTI file (``.nii``, ``.nii.gz``) under ``root``; each header is opened and checked.

    Args:
        root: folder searched recursively.
        patient_id: how the patient id is found: ``"bids"`` (the ``sub-XXX`` folder), ``"folder"`` (first
            folder below ``root``), ``"file"`` (file name without extension: every file its own patient),
            ``"auto"`` (bids if a ``sub-`` folder is present, else folder for files in subfolders, else
            file) or a ``path -> id`` callable.
        ignore: ``fnmatch`` patterns of non-image files passed over (sidecars, hidden files).
        on_error: ``"raise"`` one error listing every unreadable or non-NIfTI file, or ``"skip"``.
        skip_report: where the skip list goes.

    Returns:
        dicts with ``image``, ``patient_id``, ``name`` (path relative to ``root``) and ``ndim``.
    """
    import nibabel as nib  # a core dependency, imported on use so that `import medgen.data.readers` stays light

    root = require_dir(root, "nifti_folder")
    if not callable(patient_id):
        patient_id = choose(patient_id, ("auto", "bids", "folder", "file"), "patient_id")
    collector = new_collector("nifti_folder", root, on_error, skip_report)
    items = []
    for path in walk_files(root, ignore):
        if not path.name.lower().endswith(NIFTI_SUFFIXES):
            collector.add(
                path,
                f"unsupported file type (expected {' or '.join(NIFTI_SUFFIXES)}); convert it, "
                f"move it out or add its pattern to ignore",
            )
            continue
        try:
            img = nib.load(path)
            shape = img.header.get_data_shape()
        except Exception as exc:  # nibabel raises several types for corrupt headers / gzip streams
            collector.add(path, f"unreadable NIfTI ({type(exc).__name__}: {exc})")
            continue
        if len(shape) < 2 or min(shape) < 1:
            collector.add(path, f"image shape {tuple(shape)} is not 2D/3D/4D")
            continue
        pid = _nifti_patient(path, root, patient_id)
        if not pid:
            collector.add(path, f"no patient id by rule {patient_id!r}; pass patient_id= another rule")
            continue
        items.append(
            {"image": str(path), "patient_id": pid, "name": str(path.relative_to(root)), "ndim": len(shape)}
        )
    collector.finish()
    return items
