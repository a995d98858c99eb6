"""Helpers shared by the dataset readers: CSV headers with bracketed multi-column names, file indexes,
label vectors and the item layout."""

from __future__ import annotations

import csv
import fnmatch
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from medgen.data.errors import DataError, ProblemCollector, require_columns
from medgen.data.labels import canonical_label

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".tif", ".tiff")


def logical_header(raw: Sequence[str]) -> list[tuple[str, int, int]]:
    """Join CSV header tokens split inside brackets back into one logical column.

    NIH's headers write ``OriginalImage[Width,Height]`` and ``Bbox [x,y,w,h]`` unquoted, so a CSV parser
    sees ``"OriginalImage[Width", "Height]"``; the data rows carry one value per physical column. Trailing
    empty header cells (the real ``BBox_List_2017.csv`` has three) are dropped.

    Returns:
        ``(name, first_column, width)`` per logical column, e.g. ``("Bbox [x,y,w,h]", 2, 4)``.
    """
    cols: list[tuple[str, int, int]] = []
    i = 0
    while i < len(raw):
        name, start = raw[i].strip(), i
        while "[" in name and "]" not in name and i + 1 < len(raw):
            i += 1
            name += "," + raw[i].strip()
        if name:
            cols.append((name, start, i - start + 1))
        i += 1
    return cols


def read_csv_rows(
    path: Path,
    required: Sequence[str],
    expected: str,
    collector: ProblemCollector,
    header: bool = True,
) -> Iterator[tuple[int, dict[str, str | list[str]]]]:
    """Yield ``(line_number, {column: value})`` for a CSV, checking the required columns first.

    Multi-column logical names (see :func:`logical_header`) give a list of strings. ``header=False`` reads
    a header-less CSV whose columns are ``required`` in order (MRNet). Rows too short to hold every required
    column are reported to ``collector`` and not yielded.
    """
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        if header:
            try:
                raw = next(reader)
            except StopIteration:
                raise DataError(f"{path}: the file is empty. Expected a header like:\n  {expected}") from None
            cols = logical_header(raw)
        else:
            cols = [(name, i, 1) for i, name in enumerate(required)]
        require_columns(path, [c[0] for c in cols], required, expected)
        needed = max(start + width for name, start, width in cols if name in required)
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue  # blank line (a trailing newline), not a record
            if len(row) < needed:
                collector.add(f"{path}:{reader.line_num}", f"{len(row)} field(s), the header needs {needed}")
                continue
            out: dict[str, str | list[str]] = {}
            for name, start, width in cols:
                cells = row[start : start + width]
                if width == 1:
                    out[name] = cells[0].strip() if cells else ""
                else:
                    out[name] = [c.strip() for c in cells]
            yield reader.line_num, out


def index_files(root: Path, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> tuple[dict[str, Path], list[str]]:
    """Map each file name under ``root`` (recursively) to its path.

    Returns:
        ``(index, duplicates)``: duplicates are names found in more than one folder (readers report them,
        since picking one silently could pair a label with the wrong image).
    """
    index: dict[str, Path] = {}
    duplicates: list[str] = []
    suffixes = tuple(s.lower() for s in suffixes)
    for dirpath, _dirs, files in os.walk(root, followlinks=True):
        for name in files:
            if name.lower().endswith(suffixes):
                if name in index:
                    duplicates.append(f"{index[name]} and {Path(dirpath) / name}")
                index[name] = Path(dirpath) / name
    return index, duplicates


def resolve_labels(labels: Sequence[str] | None, native: Sequence[str]) -> tuple[str, ...]:
    """Canonical label list for a reader: ``native`` by default, else the user's list (canonicalised)."""
    return tuple(native) if labels is None else tuple(canonical_label(name) for name in labels)


def label_vector(
    values: dict[str, float], labels: Sequence[str], known: set[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Label vector and mask over ``labels``.

    Args:
        values: canonical name -> value for the findings this record states (NaN allowed: uncertain).
        labels: the output label list.
        known: canonical names the dataset can state at all; labels outside it are NaN (unknown) instead of 0.
            ``None`` means every label is known.

    Returns:
        ``(label, label_mask)``: float32 vectors; the mask is 1 where the label is known (not NaN).
    """
    vec = np.zeros(len(labels), dtype=np.float32)
    for j, name in enumerate(labels):
        if known is not None and name not in known:
            vec[j] = np.nan
        elif name in values:
            vec[j] = values[name]
    return vec, (~np.isnan(vec)).astype(np.float32)


def new_collector(name: str, root: Path, on_error: str, skip_report: str | Path | None) -> ProblemCollector:
    return ProblemCollector(f"{name} reader ({root})", on_error=on_error, skip_report=skip_report, name=name)


def require_dir(root: str | Path, what: str) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(
            f"{what}: dataset folder {str(root)!r} does not exist or is not a folder; set dataset_dir."
        )
    return root


def find_first(root: Path, names: Sequence[str], what: str, layout: str) -> Path:
    """The first of ``names`` that exists directly under ``root``; a DataError showing the layout otherwise."""
    for name in names:
        if (root / name).is_file():
            return root / name
    raise DataError(f"{what}: none of {list(names)} found in {root}. Expected layout:\n{layout}")


# File-name patterns of non-image files that folder readers pass over (an argument of each reader).
SIDECAR_PATTERNS = ("*.json", "*.txt", "*.md", "*.csv", "*.tsv", "*.bval", "*.bvec", ".*")


def walk_files(root: Path, ignore: Sequence[str]) -> list[Path]:
    """Files under ``root`` (recursive, sorted) whose names match none of ``ignore``; ``".*"`` also
    prunes hidden folders."""
    out = []
    for dirpath, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not any(fnmatch.fnmatch(d, p) for p in ignore if p == ".*"))
        for name in sorted(files):
            if not any(fnmatch.fnmatch(name, p) for p in ignore):
                out.append(Path(dirpath) / name)
    return out


def choose(value: str, options: Sequence[str], option: str) -> str:
    """Validate a string option, naming the valid ones and the closest match.

    Same contract as ``monai.utils.look_up_option``; written here so that scanning a dataset's metadata
    does not import MONAI and torch (tens of seconds on a busy 2-core machine).
    """
    if value in options:
        return value
    import difflib

    close = difflib.get_close_matches(str(value), options, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"{option}={value!r} is not supported; use one of {tuple(options)}.{hint}")
