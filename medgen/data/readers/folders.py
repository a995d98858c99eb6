"""Readers for what hospitals export: a plain folder of images, and a folder with a label CSV.

``image_folder`` finds every PNG (8/16-bit), JPEG, DICOM and NIfTI file under a folder, recursively, without
labels (super-resolution, inference). ``labelled_folder`` reads a CSV with a path column, an optional patient
column and one 1/0/blank column per finding (or one ``|``-separated findings column), mapped onto the
canonical label names, and optionally a column of report text. Both check every image by decoding it with the
one radiograph loader (:class:`medgen.transforms.io.LoadRadiograph`), so a corrupt file, a non-image or a
colour photo is reported here, with its name, not halfway through a training run.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from medgen.data.errors import DataError
from medgen.data.labels import NIH_LABELS, canonical_label
from medgen.data.readers._common import (
    SIDECAR_PATTERNS,
    choose,
    label_vector,
    new_collector,
    read_csv_rows,
    require_dir,
    walk_files,
)

logger = logging.getLogger("medgen.data")

IMAGE_FILE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom", ".nii", ".nii.gz")
PATIENT_RULES = ("auto", "dicom", "folder", "file")
CHECK_MODES = ("decode", "exists")
PATH_COLUMNS = ("image", "path", "file", "filename", "Path", "Image Index", "image_path")
PATIENT_COLUMNS = ("patient_id", "Patient ID", "PatientID", "patient", "subject_id")
_BLANK = ("", "nan", "NaN", "NA", "n/a")
_RESERVED = ("image", "label", "label_mask", "labels", "patient_id", "name", "report")

FOLDER_LAYOUT = """  <dataset_dir>/            any depth; one patient per first-level folder, else per file
    patient_001/a.png, patient_001/b.dcm, patient_002/c.jpg, scan.nii.gz ...
  (PNG 8/16-bit, JPEG, DICOM (.dcm or the DICM preamble), NIfTI (.nii, .nii.gz); sidecars *.json, *.txt,
   *.csv, *.md and hidden files are passed over)"""
LABELLED_LAYOUT = """  <dataset_dir>/labels.csv   columns: image (path relative to the folder), patient_id (optional),
                             one column per finding with 1 / 0 / blank (blank = not stated, masked), e.g.
      image,patient_id,Effusion,Cardiomegaly,Nodule
      images/a.png,p01,1,0,
  or a findings column with '|'-separated names (NIH style): dataset_kwargs {findings_column: Finding Labels}"""


def _is_image_name(path: Path) -> bool:
    return path.name.lower().endswith(IMAGE_FILE_SUFFIXES)


def _has_dicm_preamble(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def _dicom_patient(path: Path) -> str:
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PatientID"])
    except Exception:  # unreadable headers are reported by the decode check
        return ""
    return str(ds.get("PatientID", "")).strip()


def path_patient_id(path: Path, root: Path, rule: str | Callable[[Path], str] = "auto") -> str:
    """Patient id of one image file by a path rule.

    ``"dicom"``: the DICOM PatientID tag (``""`` for other files); ``"folder"``: the first folder below
    ``root``; ``"file"``: the file name without extension (each image its own patient); ``"auto"``: DICOM
    PatientID when the file is DICOM and has one, else ``folder`` for files in sub-folders, else ``file``.
    """
    if callable(rule):
        return str(rule(path))
    is_dicom = path.suffix.lower() in (".dcm", ".dicom") or _has_dicm_preamble(path)
    if rule in ("auto", "dicom") and is_dicom:
        pid = _dicom_patient(path)
        if pid or rule == "dicom":
            return pid
    rel = path.relative_to(root) if path.is_relative_to(root) else Path(path.name)
    if rule == "folder" or (rule == "auto" and len(rel.parts) > 1):
        return rel.parts[0] if len(rel.parts) > 1 else ""
    name = path.name
    return name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else path.stem


def check_image(path: Path, loader) -> str | None:
    """Why ``path`` cannot be read as a 2-D grey radiograph by ``loader``, or None when it can."""
    from medgen.transforms.io import RadiographLoadError

    try:
        img = loader(path)
    except RadiographLoadError as exc:
        return str(exc).replace(f"{path}: ", "", 1)
    except Exception as exc:  # a decoder's own error type: report it, never skip silently
        return f"cannot be decoded ({type(exc).__name__}: {exc})"
    if img.shape[-1] < 8 or img.shape[-2] < 8:
        return f"image is {tuple(img.shape[-2:])} pixels; too small to be a radiograph"
    return None


def _loader(loader_kwargs: dict | None):
    from medgen.transforms.io import LoadRadiograph

    return LoadRadiograph(**(loader_kwargs or {}))


def _patient_warning(items: list[dict], what: str) -> None:
    if items and len({it["patient_id"] for it in items}) == len(items):
        logger.warning(
            "%s: every image has its own patient id (no DICOM PatientID, no patient sub-folders): a "
            "patient-level split cannot keep one patient's images together unless the ids are right. Put each "
            "patient's images in one sub-folder or give a patient_id column (labelled_folder).",
            what,
        )


def read_image_folder(
    root: str | Path,
    patient_id: str | Callable[[Path], str] = "auto",
    ignore: Sequence[str] = SIDECAR_PATTERNS,
    check: str = "decode",
    loader_kwargs: dict | None = None,
    on_error: str = "raise",
    skip_report: str | Path | None = None,
) -> list[dict]:
    """Items for every PNG, JPEG, DICOM and NIfTI image under ``root`` (recursive, sorted), unlabelled.

    Args:
        root: the folder.
        patient_id: ``"auto"`` (DICOM PatientID, else the first sub-folder, else the file name), ``"dicom"``,
            ``"folder"``, ``"file"`` or a ``path -> id`` callable (see :func:`path_patient_id`).
        ignore: ``fnmatch`` patterns of sidecar files passed over (JSON, text, CSV, hidden files).
        check: ``"decode"`` (default) decodes every image with ``LoadRadiograph`` and reports corrupt,
            truncated, colour and non-image files; ``"exists"`` only checks the file type (fast, for very large
            folders: problems then surface at load time).
        loader_kwargs: ``LoadRadiograph`` options used for the check (``normalize``, ``frame``, ...).
        on_error: ``"raise"`` one error listing every problem, or ``"skip"`` those files (listed in
            ``skip_report`` and the log).
        skip_report: where the skip list goes.

    Returns:
        dicts with ``image`` (path), ``patient_id`` and ``name`` (path relative to ``root``).
    """
    root = require_dir(root, "image_folder")
    check = choose(check, CHECK_MODES, "check")
    if not callable(patient_id):
        patient_id = choose(patient_id, PATIENT_RULES, "patient_id")
    collector = new_collector("image_folder", root, on_error, skip_report)
    loader = _loader(loader_kwargs) if check == "decode" else None
    items = []
    for path in walk_files(root, ignore):
        if not (_is_image_name(path) or _has_dicm_preamble(path)):
            collector.add(
                path,
                f"not an image file type ({', '.join(IMAGE_FILE_SUFFIXES)} or DICOM); move it out of the folder "
                "or add its pattern to dataset_kwargs.ignore",
            )
            continue
        if loader is not None and (why := check_image(path, loader)):
            collector.add(path, why)
            continue
        pid = path_patient_id(path, root, patient_id)
        if not pid:
            collector.add(path, "no patient id (empty DICOM PatientID); set it or use patient_id='folder'")
            continue
        items.append({"image": str(path), "patient_id": pid, "name": str(path.relative_to(root))})
    if not items and not len(collector):
        collector.add(root, f"no image files found. Expected layout:\n{FOLDER_LAYOUT}")
    collector.finish()
    if not items:
        raise DataError(
            f"image_folder ({root}): no usable images left after skipping; see {collector.skip_report}"
        )
    _patient_warning(items, f"image_folder ({root})")
    return items


def _label_value(cell: str) -> float | None:
    """1/0/blank (and 1.0, 0.0, -1 = uncertain -> NaN, true/false, yes/no); None for anything else."""
    text = cell.strip()
    if text in _BLANK:
        return float("nan")
    low = text.lower()
    if low in ("1", "1.0", "true", "yes", "y", "pos", "positive"):
        return 1.0
    if low in ("0", "0.0", "false", "no", "n", "neg", "negative"):
        return 0.0
    if low in ("-1", "-1.0", "u", "uncertain"):
        return float("nan")
    return None


def _first_present(header: Sequence[str], wanted: str | None, options: Sequence[str], what: str, path: Path):
    if wanted not in (None, "auto"):
        if wanted not in header:
            raise DataError(f"{path}: {what} column {wanted!r} not found; columns are {list(header)}.")
        return wanted
    for name in options:
        if name in header:
            return name
    return None


def read_labelled_folder(
    root: str | Path,
    csv: str = "labels.csv",
    path_column: str = "auto",
    patient_column: str | None = "auto",
    label_columns: Sequence[str] | None = None,
    findings_column: str | None = None,
    findings_separator: str = "|",
    metadata_columns: Sequence[str] = (),
    report_column: str | None = None,
    labels: Sequence[str] | None = None,
    patient_id: str | Callable[[Path], str] = "auto",
    check: str = "decode",
    loader_kwargs: dict | None = None,
    on_error: str = "raise",
    skip_report: str | Path | None = None,
) -> list[dict]:
    """Items for a folder of images with a label CSV (layout in ``docs/data.md``).

    Args:
        root: the folder; paths in the CSV are relative to it (absolute paths are kept).
        csv: the CSV file name (or path relative to ``root``).
        path_column: the column with image paths; ``"auto"`` takes the first of ``PATH_COLUMNS``.
        patient_column: the patient id column; ``"auto"`` the first of ``PATIENT_COLUMNS`` if any; ``None``
            (or no such column): the path rule ``patient_id`` (DICOM PatientID, sub-folder, file name).
        label_columns: the finding columns (1 / 0 / blank; -1 means uncertain and is masked). ``None``: every
            column that is not the path, patient or a ``metadata_columns`` entry must be a finding name;
            unknown names are reported together, with the fix.
        findings_column: instead of one column per finding, one column of ``findings_separator``-separated
            names (NIH's ``Finding Labels``; ``No Finding`` = all negative); other columns are metadata.
        metadata_columns: columns kept in the items as strings (age, view, ...), never read as labels.
        report_column: a column of report text, kept as the item's ``report`` (what report-conditioned
            workflows need); a row with an empty report cell is a bad row. Without it no item has a
            ``report``.
        labels: the label list of the ``label`` vector (canonical); default: the finding columns in CSV order
            (``findings_column``: NIH's 14 when every name found is an NIH finding, else the names found).
            Labels the CSV does not state are NaN with ``label_mask`` 0.
        patient_id: path rule used when there is no patient column.
        check: ``"decode"`` (default: every image decoded once) or ``"exists"``.
        loader_kwargs: ``LoadRadiograph`` options for the check.
        on_error: ``"raise"`` or ``"skip"`` (see :class:`medgen.data.errors.ProblemCollector`).
        skip_report: where the skip list goes.

    Returns:
        dicts with ``image``, ``label``, ``label_mask`` (float32 over ``labels``), ``labels`` (the names),
        ``patient_id``, ``name``, ``report`` (with ``report_column``) and the metadata columns.
    """
    root = require_dir(root, "labelled_folder")
    check = choose(check, CHECK_MODES, "check")
    csv_path = root / csv
    if not csv_path.is_file():
        found = sorted(p.name for p in root.glob("*.csv"))
        raise DataError(
            f"labelled_folder: {csv_path} not found (CSVs in the folder: {found or 'none'}); pass "
            f"dataset_kwargs {{csv: <name>}}. Expected layout:\n{LABELLED_LAYOUT}"
        )
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        header = [h.strip() for h in f.readline().rstrip("\r\n").split(",")]
    path_col = _first_present(header, path_column, PATH_COLUMNS, "path", csv_path)
    if path_col is None:
        raise DataError(
            f"{csv_path}: no image path column; found columns {header}. Name it one of {list(PATH_COLUMNS)} "
            f"or pass dataset_kwargs {{path_column: <name>}}. Expected layout:\n{LABELLED_LAYOUT}"
        )
    pat_col = (
        None
        if patient_column is None
        else _first_present(header, patient_column, PATIENT_COLUMNS, "patient", csv_path)
    )
    meta = set(metadata_columns)
    unknown_meta = sorted(meta - set(header))
    if unknown_meta:
        raise DataError(f"{csv_path}: metadata_columns {unknown_meta} not in the CSV (columns {header}).")
    if report_column is not None:
        if report_column not in header:
            raise DataError(f"{csv_path}: report_column {report_column!r} not found; columns are {header}.")
        other_uses = [
            what
            for what, cols in (
                ("the path column", [path_col]),
                ("the patient column", [pat_col]),
                ("findings_column", [findings_column]),
                ("label_columns", list(label_columns or ())),
                ("metadata_columns", list(meta)),
            )
            if report_column in cols
        ]
        if other_uses:
            raise DataError(
                f"{csv_path}: report_column {report_column!r} is also {' and '.join(other_uses)}."
            )
    not_labels = {path_col, pat_col, report_column}
    if findings_column is not None:
        if findings_column not in header:
            raise DataError(
                f"{csv_path}: findings_column {findings_column!r} not found; columns are {header}."
            )
        finding_cols: dict[str, str] = {}
        meta |= set(header) - not_labels - {findings_column}
    else:
        candidates = (
            list(label_columns)
            if label_columns is not None
            else [h for h in header if h and h not in not_labels and h not in meta]
        )
        missing = [c for c in candidates if c not in header]
        if missing:
            raise DataError(f"{csv_path}: label_columns {missing} not in the CSV (columns {header}).")
        finding_cols, unknown = {}, []
        for col in candidates:
            try:
                finding_cols[col] = canonical_label(col)
            except KeyError:
                unknown.append(col)
        if unknown:
            raise DataError(
                f"{csv_path}: column(s) {unknown} are neither the path ({path_col!r}), the patient id "
                f"({pat_col!r}) nor finding names of the medgen label space (medgen.data.labels.ALL_LABELS). "
                f"Rename finding columns to canonical names (e.g. 'Pleural Effusion' or 'Effusion'), list "
                f"other columns in dataset_kwargs {{metadata_columns: [...]}} (report text: {{report_column: "
                f"<name>}}), or give label_columns / findings_column.",
            )
        if label_columns is None:
            meta |= set(header) - not_labels - set(finding_cols)
    collector = new_collector("labelled_folder", root, on_error, skip_report)
    loader = _loader(loader_kwargs) if check == "decode" else None
    rows = []
    required = [path_col] + ([findings_column] if findings_column else list(finding_cols))
    required += [report_column] if report_column else []
    for line, row in read_csv_rows(csv_path, required, ",".join(header), collector):
        where = f"{csv_path.name}:{line}"
        rel = str(row[path_col])
        if not rel:
            collector.add(where, f"empty {path_col!r}")
            continue
        path = Path(rel) if Path(rel).is_absolute() else root / rel
        if not path.is_file():
            collector.add(where, f"image {rel!r} does not exist under {root}; fix the path or remove the row")
            continue
        report = str(row[report_column]).strip() if report_column else None
        if report_column and not report:
            collector.add(where, f"empty report text in column {report_column!r}; fill it or remove the row")
            continue
        values: dict[str, float] = {}
        if findings_column:
            names = [n.strip() for n in str(row[findings_column]).split(findings_separator) if n.strip()]
            bad = []
            for name in names:
                if name.lower() in ("no finding", "normal", "none"):
                    continue
                try:
                    values[canonical_label(name)] = 1.0
                except KeyError:
                    bad.append(name)
            if bad:
                collector.add(where, f"unknown finding name(s) {bad} in {findings_column!r}")
                continue
        else:
            bad = []
            for col, name in finding_cols.items():
                value = _label_value(str(row[col]))
                if value is None:
                    bad.append(f"{col}={row[col]!r}")
                else:
                    values[name] = value
            if bad:
                collector.add(where, f"label value(s) {bad} are not 1, 0 or blank")
                continue
        if loader is not None and (why := check_image(path, loader)):
            collector.add(path, why)
            continue
        pid = str(row[pat_col]).strip() if pat_col else path_patient_id(path, root, patient_id)
        if not pid:
            collector.add(where, "empty patient id")
            continue
        rows.append((path, pid, values, {c: str(row[c]) for c in sorted(meta) if c in row}, report))
    collector.finish()
    if not rows:
        raise DataError(f"labelled_folder ({csv_path}): no usable rows; see {collector.skip_report}")
    if labels is None:
        if findings_column:
            seen = sorted({n for _, _, v, _, _ in rows for n in v})
            labels = NIH_LABELS if set(seen) <= set(NIH_LABELS) else tuple(seen)
        else:
            labels = tuple(dict.fromkeys(finding_cols.values()))
    labels = tuple(canonical_label(n) for n in labels)
    known = None if findings_column else set(finding_cols.values())
    items = []
    for path, pid, values, extras, report in rows:
        vec, mask = label_vector(values, labels, known=known)  # blank cells are NaN: not stated, masked
        extras = {re.sub(r"\W+", "_", k).strip("_").lower(): v for k, v in extras.items()}
        items.append(
            {
                "image": str(path),
                "label": vec,
                "label_mask": mask,
                "labels": list(labels),
                "patient_id": pid,
                "name": str(path.relative_to(root)) if path.is_relative_to(root) else str(path),
                **{k: v for k, v in extras.items() if k not in _RESERVED},  # "report" only from report_column
                **({"report": report} if report is not None else {}),
            }
        )
    if pat_col is None:
        _patient_warning(items, f"labelled_folder ({root})")
    return items
