"""The data-source contract (medgen.data.datalist) and the folder readers, on real fixture files and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medgen.data.datalist import inference_items, load_datalist, phantom_split
from medgen.data.errors import DataError
from medgen.data.labels import NIH_LABELS
from medgen.data.layouts import detect_layout
from medgen.data.readers import read_image_folder, read_labelled_folder

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "realdata"
NIH = FIXTURES / "nih_chestxray14"
HANNOVER = FIXTURES / "hannover_covid_cxr"
NIH_KWARGS = {"findings_column": "Finding Labels", "patient_column": "Patient ID"}


def _grey(path: Path, size: int = 64, value: int = 100, mode: str = "L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    arr = rng.integers(0, 255, (size, size), dtype=np.uint8)
    img = Image.fromarray(arr)
    if mode == "RGB":
        img = img.convert("RGB")  # three equal channels: an RGB-encoded grey radiograph
    img.save(path)
    return path


def test_real_nih_fixtures_through_labelled_folder():
    items = read_labelled_folder(NIH, **NIH_KWARGS)
    assert len(items) == 6
    by_name = {Path(it["image"]).name: it for it in items}
    edema = by_name["00000032_023.png"]
    assert edema["patient_id"] == "32"
    assert edema["labels"] == list(NIH_LABELS)
    on = {NIH_LABELS[j] for j in np.flatnonzero(edema["label"] == 1)}
    assert on == {"Edema", "Infiltration"}
    assert edema["view_position"] in ("AP", "PA")


def test_auto_split_is_patient_level_and_written(tmp_path):
    splits = load_datalist(
        "auto",
        NIH,
        NIH_KWARGS,
        split={"fractions": [0.5, 0.0, 0.5], "seed": 1},
        workflow="t",
        report_dir=tmp_path,
    )
    assert splits.info["dataset"] == "labelled_folder"
    train_p = {it["patient_id"] for it in splits.train}
    test_p = {it["patient_id"] for it in splits.test}
    assert train_p and test_p and not train_p & test_p
    report = json.loads((tmp_path / "data_t.json").read_text())
    assert report["splits"]["train"]["images"] + report["splits"]["test"]["images"] == 6
    assert sorted(report["items"]["train"] + report["items"]["test"]) == sorted(
        str(p) for p in (NIH / "images").glob("*.png")
    )
    assert "patient-level" in report["split_method"]


def test_real_hannover_jpegs_patient_ids_from_csv():
    items = read_labelled_folder(HANNOVER, label_columns=[])
    assert sorted(it["patient_id"] for it in items) == ["3c87abb9", "8d6990f2"]
    assert all(it["label"].shape == (0,) for it in items)


def test_image_folder_patient_rule_and_formats(tmp_path):
    _grey(tmp_path / "p1" / "a.png")
    _grey(tmp_path / "p1" / "b.png", mode="RGB")
    (tmp_path / "p2").mkdir()
    shutil.copy(HANNOVER / "images" / "f64132c8.jpg", tmp_path / "p2" / "c.jpg")
    (tmp_path / "p1" / "notes.txt").write_text("sidecar, passed over")
    items = read_image_folder(tmp_path)
    assert [(it["name"], it["patient_id"]) for it in items] == [
        ("p1/a.png", "p1"),
        ("p1/b.png", "p1"),
        ("p2/c.jpg", "p2"),
    ]


def test_bad_inputs_are_listed_together_then_skipped(tmp_path):
    _grey(tmp_path / "good.png")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (tmp_path / "model.bin").write_bytes(b"\x00\x01")
    photo = np.zeros((32, 32, 3), np.uint8)
    photo[..., 0] = 200  # a red photo, not a grey radiograph
    Image.fromarray(photo).save(tmp_path / "photo.jpg")
    with pytest.raises(DataError) as err:
        read_image_folder(tmp_path)
    msg = str(err.value)
    for name in ("corrupt.png", "model.bin", "photo.jpg"):
        assert name in msg
    assert "good.png" not in msg
    assert "colour" in msg and "not an image file type" in msg
    report = tmp_path / "skipped.tsv"
    items = read_image_folder(tmp_path, on_error="skip", skip_report=report)
    assert [Path(it["image"]).name for it in items] == ["good.png"]
    assert len(report.read_text().splitlines()) == 1 + 3


def test_zero_usable_images(tmp_path):
    (tmp_path / "readme.md").write_text("nothing here")
    with pytest.raises(DataError, match="no image files found"):
        read_image_folder(tmp_path)
    (tmp_path / "x.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match="no usable images"):
        read_image_folder(tmp_path, on_error="skip", skip_report=tmp_path / "s.tsv")


def test_labelled_folder_bad_csv(tmp_path):
    _grey(tmp_path / "a.png")
    (tmp_path / "labels.csv").write_text("image,patient_id,Effusion,Colour\na.png,p1,1,red\n")
    with pytest.raises(DataError, match=r"\['Colour'\].*metadata_columns"):
        read_labelled_folder(tmp_path)
    (tmp_path / "labels.csv").write_text(
        "image,patient_id,Effusion\na.png,p1,1\nmissing.png,p2,0\nb.png,p3,2\n"
    )
    _grey(tmp_path / "b.png")
    with pytest.raises(DataError) as err:
        read_labelled_folder(tmp_path)
    assert "missing.png" in str(err.value) and "does not exist" in str(err.value)
    assert "'2'" in str(err.value)
    items = read_labelled_folder(tmp_path, on_error="skip", skip_report=tmp_path / "s.tsv")
    assert [it["patient_id"] for it in items] == ["p1"]


def test_blank_cells_are_masked(tmp_path):
    _grey(tmp_path / "a.png")
    (tmp_path / "labels.csv").write_text("image,patient_id,Effusion,Nodule\na.png,p1,1,\n")
    (item,) = read_labelled_folder(tmp_path)
    assert item["labels"] == ["Effusion", "Nodule"]
    assert item["label"][0] == 1 and np.isnan(item["label"][1])
    assert item["label_mask"].tolist() == [1.0, 0.0]


def test_requires_refuses_unlabelled_data(tmp_path):
    _grey(tmp_path / "p1" / "a.png")
    _grey(tmp_path / "p2" / "b.png")
    with pytest.raises(DataError, match="needs 'label'.*labelled_folder"):
        load_datalist(dataset_dir=tmp_path, requires=("image", "label"), workflow="classifier train")
    with pytest.raises(DataError, match="only the phantom"):
        load_datalist(dataset_dir=tmp_path, requires=("image", "masks"), workflow="pipeline")


def test_no_silent_phantom(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_datalist(dataset_dir=tmp_path / "nope")
    with pytest.raises(DataError, match="phantom reads no folder"):
        load_datalist("phantom", tmp_path)
    with pytest.raises(DataError, match="Layouts it knows"):
        detect_layout(tmp_path)


def test_phantom_split_is_lazy_and_matches_patient_split():
    from medgen.data.phantom import patient_of
    from medgen.data.split import patient_split

    s = phantom_split(n=12, size=128, seed=3, split_seed=3)
    assert callable(s._parts["test"])
    stubs = [{"index": i, "patient_id": patient_of(i, 3)[0]} for i in range(12)]
    want = [it["index"] for it in patient_split(stubs, (0.7, 0.1, 0.2), seed=3)[2]]
    assert [it["index"] for it in s.test] == want
    assert callable(s._parts["train"])  # only the test split was rendered
    assert s.test[0]["image"].shape == (1, 128, 128)


def test_inference_items_recursive_all_formats(tmp_path):
    _grey(tmp_path / "in" / "a.png")
    (tmp_path / "in" / "sub").mkdir()
    shutil.copy(HANNOVER / "images" / "ec083e35.jpg", tmp_path / "in" / "sub" / "b.jpg")
    items = inference_items(tmp_path / "in", tmp_path / "out")
    assert sorted(Path(it["image"]).name for it in items) == ["a.png", "b.jpg"]
    assert (tmp_path / "out" / "data_inference.json").is_file()
    phantom = inference_items(None, tmp_path / "out2", {"n": 1, "size": 128, "downscale": 2})
    assert Image.open(phantom[0]["image"]).size == (64, 64)


@pytest.mark.parametrize("fmt", ["png", "dicom", "nifti"])
def test_written_phantom_folder_reads_back_as_labelled_folder(tmp_path, fmt):
    from medgen.data.labels import PHANTOM_LABELS
    from medgen.data.phantom import render_phantom, write_phantom_dataset
    from medgen.transforms.io import LoadRadiograph

    write_phantom_dataset(tmp_path, n=6, size=128, fmt=fmt, progress=False)
    splits = load_datalist(dataset_dir=tmp_path, requires=("image", "label"), split={"fractions": [1, 0, 0]})
    assert splits.info["dataset"] == "labelled_folder"
    items = sorted(splits.train, key=lambda it: it["image"])
    assert len(items) == 6 and items[0]["labels"] == list(PHANTOM_LABELS)
    ref = render_phantom(0, 128, 0)
    np.testing.assert_array_equal(items[0]["label"], ref.labels)
    img = LoadRadiograph()(items[0]["image"])[0].numpy()
    assert np.abs(img - ref.image).max() < 2e-3  # 12-bit DICOM / 16-bit PNG quantisation only
