"""Every registered 2-D reader feeds a bundle workflow end to end (issue #11).

One case per reader: a real bundle workflow runs in its smoke config on a folder in that reader's own layout, and
the ``runs/data_<workflow>.json`` the data-source contract writes (medgen.data.datalist) must list exactly that
folder's images; the phantom renderer is made to raise, so nothing can silently fall back to it.

* ``cxr_attention_sr_classifier`` train + evaluate: ``nih_cxr14``, ``chexpert``, ``indiana_cxr`` and
  ``labelled_folder`` (the real NIH fixture PNGs).
* ``cxr_sr_distillation`` train + inference: ``image_folder`` (the real Hannover JPEGs), ``dicom_folder`` and
  ``nifti_folder`` (phantom sets written to disk before the renderer is blocked).

``mrnet`` (3-D knee MRI volumes) has no 2-D radiograph bundle yet (the knee bundle is a later issue): no case.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medgen.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from readers_fixtures import INDIANA_PROJECTIONS, chexpert_row, make_indiana_kaggle, make_nih  # noqa: E402

CLASSIFIER = "cxr_attention_sr_classifier"
SR = "cxr_sr_distillation"
REALDATA = Path(__file__).resolve().parents[1] / "fixtures" / "realdata"
IMAGE_SUFFIXES = (".png", ".jpg", ".dcm", ".nii.gz")


# -- helpers ---------------------------------------------------------------------------------------------------
def _run(bundle: str, workflow: str, root: Path, *sets: str, config: str | None = "smoke") -> int:
    args = ["--debug", "run", bundle, workflow, "--bundle-root", str(root)]
    if config:
        args += ["--config", config]
    for s in sets:
        args += ["--set", s]
    return main(args)


def _forbid_phantom(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every way to the phantom raise (call after the test data are written)."""
    import medgen.data.datalist
    import medgen.data.phantom
    import medgen.data.phantom.render

    def no_phantom(*args, **kwargs):
        raise AssertionError("the phantom was used although dataset_dir was given")

    monkeypatch.setattr(medgen.data.phantom.render, "render_phantom", no_phantom)
    monkeypatch.setattr(medgen.data.phantom, "render_phantom", no_phantom, raising=False)  # lazy-export cache
    monkeypatch.setattr(medgen.data.datalist, "_phantom_item", no_phantom)
    monkeypatch.setattr(medgen.data.datalist, "write_phantom_inputs", no_phantom)


def _images(folder: Path) -> list[str]:
    return sorted(
        str(p) for p in folder.rglob("*") if p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES)
    )


def _listed(report: dict) -> list[str]:
    return sorted(p for part in report["items"].values() for p in part)


def _data_report(root: Path, workflow: str) -> dict:
    return json.loads((root / "runs" / f"data_{workflow}.json").read_text())


def _grey_png(path: Path, size: int = 64, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8), mode="L").save(path)


# -- layouts ---------------------------------------------------------------------------------------------------
def _nih(root: Path) -> Path:
    """readers_fixtures.make_nih (8 patients, official lists), its 8x8 PNGs rewritten at 64 px."""
    make_nih(root)
    for i, p in enumerate(sorted(root.rglob("*.png"))):
        _grey_png(p, seed=i)
    return root


def _chexpert(root: Path) -> Path:
    """train.csv (6 patients, one lateral view left out by the frontal filter) + valid.csv (2 patients)."""
    rows = {"train": [], "valid": []}
    for split, patients in (("train", range(1, 7)), ("valid", range(7, 9))):
        for pid in patients:
            for study in (1, 2) if pid % 2 else (1,):
                rel = f"{split}/patient{pid:05d}/study{study}/view1_frontal.jpg"
                values = {
                    "Cardiomegaly": str(pid % 2),
                    "Pleural Effusion": "-1" if pid == 3 else str(study - 1),
                }
                rows[split].append(chexpert_row(f"CheXpert-v1.0-small/{rel}", values))
                path = root / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                rng = np.random.default_rng(pid * 10 + study)
                Image.fromarray(rng.integers(0, 255, (64, 56), dtype=np.uint8), mode="L").save(path)
        lateral = f"CheXpert-v1.0-small/{split}/patient{patients[0]:05d}/study1/view2_lateral.jpg"
        rows[split].append(chexpert_row(lateral, {"Edema": "1"}, view="Lateral"))  # no file: never read
    from readers_fixtures import CHEXPERT_HEADER

    for split, lines in rows.items():
        (root / f"{split}.csv").write_text("\n".join([CHEXPERT_HEADER, *lines]) + "\n")
    return root


def _indiana(root: Path) -> tuple[Path, list[str]]:
    """readers_fixtures.make_indiana_kaggle at 64 px; returns the frontal images (the reader's default view)."""
    make_indiana_kaggle(root, size=64)
    frontal = [
        root / "images" / "images_normalized" / name for _, name, v in INDIANA_PROJECTIONS if v == "Frontal"
    ]
    return root, sorted(str(p) for p in frontal)


# -- classifier bundle: train + evaluate ------------------------------------------------------------------------
def _classifier_case(tmp_path: Path, reader: str) -> tuple[Path, list[str], tuple[str, ...]]:
    """(dataset_dir, the images the reader must give, extra --set overrides) for one reader."""
    data = tmp_path / "data"
    if reader == "nih_cxr14":
        return _nih(data), _images(data), ()
    if reader == "chexpert":
        _chexpert(data)
        return data, _images(data), ()
    if reader == "indiana_cxr":
        root, frontal = _indiana(data)
        return root, frontal, ("split={fractions: [0.34, 0.33, 0.33], seed: 0}",)
    if reader == "labelled_folder":
        shutil.copytree(REALDATA / "nih_chestxray14", data)
        sets = (
            "dataset_kwargs={findings_column: Finding Labels, patient_column: Patient ID}",
            "split={fractions: [0.5, 0.25, 0.25], seed: 0}",
        )
        return data, _images(data), sets
    raise AssertionError(reader)


@pytest.mark.parametrize("reader", ["nih_cxr14", "chexpert", "indiana_cxr", "labelled_folder"])
def test_classifier_train_and_evaluate_read_the_folder(tmp_path, monkeypatch, reader):
    data, expected, extra = _classifier_case(tmp_path, reader)
    before = sorted(str(p) for p in data.rglob("*"))
    _forbid_phantom(monkeypatch)
    root = tmp_path / "root"
    sets = (f"dataset_dir={data}", f"dataset={reader}", "image_size=64", *extra)
    assert _run(CLASSIFIER, "train", root, *sets) == 0
    train = _data_report(root, "train")
    assert train["dataset"] == reader and train["dataset_dir"] == str(data)
    assert _listed(train) == expected
    assert all(train["splits"][n]["images"] > 0 for n in ("train", "val", "test"))
    assert (root / "models" / "classifier.pt").is_file()

    assert _run(CLASSIFIER, "evaluate", root, *sets) == 0
    evaluate = _data_report(root, "evaluate")
    assert evaluate["dataset"] == reader and evaluate["items"] == train["items"]  # same held-out patients
    assert (root / "runs" / "metrics.csv").is_file()
    assert sorted(str(p) for p in data.rglob("*")) == before  # nothing written next to the data


# -- SR bundle: train + inference --------------------------------------------------------------------------------
def _sr_case(tmp_path: Path, reader: str) -> tuple[Path, tuple[str, ...]]:
    data = tmp_path / "data"
    if reader == "image_folder":
        data.mkdir()
        for p in sorted((REALDATA / "hannover_covid_cxr" / "images").glob("*.jpg")):
            shutil.copy(p, data / p.name)  # flat: each file its own patient
        return data, ("eval_crop=128",)
    from medgen.data.phantom import write_phantom_dataset

    fmt = {"dicom_folder": "dicom", "nifti_folder": "nifti"}[reader]
    write_phantom_dataset(data, 6, size=128, fmt=fmt, progress=False, masks=False)
    extra = ("dataset_kwargs={patient_id: file}",) if reader == "nifti_folder" else ()
    return data, extra


@pytest.mark.parametrize("reader", ["image_folder", "dicom_folder", "nifti_folder"])
def test_sr_train_and_inference_read_the_folder(tmp_path, monkeypatch, reader):
    data, extra = _sr_case(tmp_path, reader)
    expected = _images(data)
    before = sorted(str(p) for p in data.rglob("*"))
    _forbid_phantom(monkeypatch)
    root = tmp_path / "root"
    small = "teacher_kwargs={num_features: 8, growth: 8, num_blocks: 1, num_layers: 2}"
    sets = (
        f"dataset_dir={data}",
        f"dataset={reader}",
        "split={fractions: [0.5, 0.5, 0.0], seed: 0}",
        small,
        *extra,
    )
    assert _run(SR, "train", root, *sets) == 0
    train = _data_report(root, "train_teacher")
    assert train["dataset"] == reader and train["dataset_dir"] == str(data)
    assert _listed(train) == expected
    assert train["splits"]["train"]["images"] > 0 and train["splits"]["val"]["images"] > 0
    assert (root / "models" / "teacher.pt").is_file() and (root / "models" / "model.pt").is_file()

    assert _run(SR, "inference", root, f"dataset_dir={data}") == 0
    inference = _data_report(root, "inference")
    assert _listed(inference) == expected
    outputs = sorted((root / "runs" / "inference").rglob("*_sr*"))
    assert len(outputs) == len(expected)
    assert sorted(str(p) for p in data.rglob("*")) == before
