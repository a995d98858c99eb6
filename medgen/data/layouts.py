"""Which reader a folder's layout calls for (``dataset: auto``) and the official splits datasets ship.

Part of the data-source contract in :mod:`medgen.data.datalist`; kept apart so that a new layout or official
split is one entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from medgen.data.errors import DataError
from medgen.data.split import patient_split


# -- layouts ---------------------------------------------------------------------------------------------------
def _is_nih(root: Path) -> bool:
    return any((root / n).is_file() for n in ("Data_Entry_2017.csv", "Data_Entry_2017_v2020.csv"))


def _is_chexpert(root: Path) -> bool:
    return (root / "train.csv").is_file() and (root / "valid.csv").is_file()


def _is_indiana(root: Path) -> bool:
    return (root / "indiana_reports.csv").is_file() or (root / "ecgen-radiology").is_dir()


def _is_mrnet(root: Path) -> bool:
    return (root / "train").is_dir() and (root / "valid").is_dir() and any(root.glob("train-*.csv"))


def _is_labelled(root: Path) -> bool:
    return (root / "labels.csv").is_file()


def _has_images(root: Path) -> bool:
    from medgen.data.readers.folders import IMAGE_FILE_SUFFIXES

    return any(p.name.lower().endswith(IMAGE_FILE_SUFFIXES) for p in root.rglob("*") if p.is_file())


# Checked in order: the first match wins. Plugins' readers are chosen by name (dataset: <name>).
LAYOUTS: tuple[tuple[str, Callable[[Path], bool], str], ...] = (
    ("nih_cxr14", _is_nih, "Data_Entry_2017.csv (+ images/, test_list.txt)"),
    ("chexpert", _is_chexpert, "train.csv + valid.csv with a Path column"),
    ("indiana_cxr", _is_indiana, "indiana_reports.csv (Kaggle) or ecgen-radiology/*.xml (Open-i)"),
    ("mrnet", _is_mrnet, "train/ valid/ (axial, coronal, sagittal .npy) + train-*.csv"),
    ("labelled_folder", _is_labelled, "labels.csv with an image path column and finding columns"),
    ("image_folder", _has_images, "PNG / JPEG / DICOM / NIfTI files at any depth, no labels"),
)


def detect_layout(root: str | Path) -> str:
    """The registered reader whose layout ``root`` has (``dataset: auto``); a DataError listing them otherwise."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"dataset_dir {str(root)!r} does not exist or is not a folder.")
    for name, matches, _ in LAYOUTS:
        if matches(root):
            return name
    known = "\n".join(f"  {name:<16} {what}" for name, _, what in LAYOUTS)
    raise DataError(
        f"dataset: auto found no known layout in {root} (no image files, no label CSV). Layouts it knows:\n"
        f"{known}\nPoint dataset_dir at such a folder or set dataset to a reader name (docs/data.md)."
    )


# -- official splits -------------------------------------------------------------------------------------------
def _carve_val(pool: list[dict], fractions: Sequence[float], seed: int) -> tuple[list[dict], list[dict]]:
    f_train, f_val = float(fractions[0]), float(fractions[1])
    share = f_val / (f_train + f_val) if f_train + f_val > 0 else 0.0
    return patient_split(pool, (1.0 - share, share), seed=seed)


def official_split(
    name: str, root: Path, reader: Callable, kwargs: dict, fractions: Sequence[float], seed: int
) -> tuple[tuple[list[dict], ...], str] | None:
    """``(train, val, test), description`` from the dataset's own test split, or None when it has none."""
    if name == "nih_cxr14" and (root / "test_list.txt").is_file() and (root / "train_val_list.txt").is_file():
        from medgen.data.readers.nih import nih_official_split

        items = reader(root, **kwargs)
        share = float(fractions[1]) / max(float(fractions[0]) + float(fractions[1]), 1e-9)
        return nih_official_split(items, root, val_fraction=share, seed=seed), (
            f"official (test_list.txt); validation {share:.0%} of train_val by patient, seed {seed}"
        )
    if name in ("chexpert", "mrnet") and "split" not in kwargs:
        pool = reader(root, split="train", **kwargs)
        test = reader(root, split="valid", **kwargs)
        train, val = _carve_val(pool, fractions, seed)
        what = "valid.csv" if name == "chexpert" else "valid/"
        return (
            train,
            val,
            test,
        ), f"official ({what} as test); validation carved from train by patient, seed {seed}"
    return None
