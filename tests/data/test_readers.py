"""Readers on tiny fixtures written in each dataset's real format (no real images are read)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from readers_fixtures import (
    CHEXPERT_HEADER,
    NIH_PATIENTS,
    NIH_TEST_PATIENTS,
    chexpert_row,
    make_mrnet,
    make_nih,
    real_lines,
    write_png,
)

from medgen.data.errors import DataError
from medgen.data.labels import ALL_LABELS, CHEXPERT_LABELS, MRNET_LABELS, NIH_LABELS
from medgen.data.readers import (
    nih_official_split,
    read_chexpert,
    read_mrnet,
    read_nih_boxes,
    read_nih_cxr14,
)
from medgen.data.split import assert_no_patient_leak
from medgen.registry import get


# ---------------------------------------------------------------------------------------------- NIH
def test_nih_reads_every_image_with_its_findings(tmp_path):
    root = make_nih(tmp_path / "nih")
    items = read_nih_cxr14(root)
    assert len(items) == sum(len(f) for f in NIH_PATIENTS.values())
    by_name = {it["image_id"]: it for it in items}
    for pid, findings in NIH_PATIENTS.items():
        for k, finding in enumerate(findings):
            item = by_name[f"{pid:08d}_{k:03d}.png"]
            expected = {f for f in finding.split("|") if f != "No Finding"}
            assert {NIH_LABELS[j] for j in np.flatnonzero(item["label"])} == expected
            assert item["label"].dtype == np.float32 and item["label_mask"].all()
            assert item["patient_id"] == str(pid)
            assert item["no_finding"] == (finding == "No Finding")
            assert item["image"].endswith(f"images/{item['image_id']}")
            assert item["original_size"].tolist() == [2048, 2500] and item["follow_up"] == k


def test_nih_old_age_format_and_registry(tmp_path):
    root = make_nih(tmp_path / "nih", age_style="Y")
    items = get("dataset", "nih_cxr14")(root)
    assert sorted({it["age"] for it in items}) == [40.0, 41.0, 42.0, 43.0]


def test_nih_real_header_and_rows(tmp_path):
    """The parser reads the real Data_Entry_2017_v2020.csv / BBox_List_2017.csv headers and rows exactly."""
    lines = real_lines("Data_Entry_2017_v2020.csv.gz", 6)
    (tmp_path / "Data_Entry_2017_v2020.csv").write_text("\n".join(lines) + "\n")
    for line in lines[1:]:
        write_png(tmp_path / "images" / line.split(",")[0])
    items = read_nih_cxr14(tmp_path)
    assert len(items) == 6
    for line, item in zip(lines[1:], items):
        cells = line.split(",")
        assert item["image_id"] == cells[0] and item["patient_id"] == cells[3]
        stated = {f for f in cells[1].split("|") if f != "No Finding"}
        assert {NIH_LABELS[j] for j in np.flatnonzero(item["label"])} == stated
        assert item["original_size"].tolist() == [int(cells[7]), int(cells[8])]
        assert item["pixel_spacing"][0] == pytest.approx(float(cells[9]))
    box_lines = real_lines("BBox_List_2017.csv.gz", 4)
    (tmp_path / "BBox_List_2017.csv").write_text("\n".join(box_lines) + "\n")
    boxes = read_nih_boxes(tmp_path / "BBox_List_2017.csv")
    first = box_lines[1].split(",")
    assert boxes[first[0]][0]["box"] == pytest.approx([float(v) for v in first[2:6]])


def test_nih_boxes_use_canonical_names(tmp_path):
    root = make_nih(tmp_path / "nih")
    items = read_nih_cxr14(root, only_with_boxes=True)
    assert sorted(it["image_id"] for it in items) == ["00000001_000.png", "00000003_000.png"]
    boxes = {it["image_id"]: it["boxes"] for it in items}["00000003_000.png"]
    assert [b["label"] for b in boxes] == ["Infiltration", "Effusion"]
    assert boxes[0]["box"] == [10.5, 20.0, 30.0, 40.0]


def test_nih_projection_onto_union_label_space(tmp_path):
    items = read_nih_cxr14(make_nih(tmp_path / "nih"), labels=ALL_LABELS)
    for item in items:
        for j, name in enumerate(ALL_LABELS):
            assert math.isnan(item["label"][j]) == (name not in NIH_LABELS)
            assert item["label_mask"][j] == (name in NIH_LABELS)


def test_nih_official_split_with_patient_level_val(tmp_path):
    root = make_nih(tmp_path / "nih")
    items = read_nih_cxr14(root)
    train, val, test = nih_official_split(items, root, val_fraction=0.25, seed=1)
    assert {it["patient_id"] for it in test} == {str(p) for p in NIH_TEST_PATIENTS}
    assert len(train) + len(val) + len(test) == len(items) and val and train
    assert_no_patient_leak(train, val, test)
    assert [it["image_id"] for it in read_nih_cxr14(root, split="test")] == [it["image_id"] for it in test]


def test_nih_reports_every_bad_row_and_missing_image_at_once(tmp_path):
    root = make_nih(tmp_path / "nih")
    csv = root / "Data_Entry_2017.csv"
    lines = csv.read_text().splitlines()
    lines[1] = lines[1].replace("Cardiomegaly", "Cardiomegally")  # typo: unknown finding
    lines[2] = lines[2].replace("Cardiomegaly|Emphysema", "No Finding|Mass")
    lines[4] = ",".join(lines[4].split(",")[:2])  # truncated row
    csv.write_text("\n".join(lines) + "\n")
    missing = sorted(root.rglob("00000008_*.png"))
    for path in missing:
        path.unlink()
    with pytest.raises(DataError) as err:
        read_nih_cxr14(root)
    text = str(err.value)
    assert len(err.value.problems) == 3 + len(missing)
    assert "Cardiomegally" in text and f"{csv}:2" in text and f"{csv}:3" in text
    assert f"{csv}:5: 2 field(s), the header needs 4" in text
    assert all(p.name in text for p in missing)

    report = tmp_path / "out" / "skipped.tsv"
    items = read_nih_cxr14(root, on_error="skip", skip_report=report)
    assert len(items) == sum(len(f) for f in NIH_PATIENTS.values()) - 3 - len(missing)
    assert len(report.read_text().splitlines()) == 1 + 3 + len(missing)


def test_nih_missing_columns_name_file_and_expected_header(tmp_path):
    root = tmp_path / "nih"
    root.mkdir()
    (root / "Data_Entry_2017.csv").write_text("Image Index,Labels,Patient\nx.png,Mass,1\n")
    with pytest.raises(DataError, match="Finding Labels") as err:
        read_nih_cxr14(root)
    assert str(root / "Data_Entry_2017.csv") in str(err.value) and "OriginalImage[Width,Height]" in str(
        err.value
    )


def test_missing_dataset_folder_is_reported(tmp_path):
    with pytest.raises(DataError, match="dataset_dir"):
        read_nih_cxr14(tmp_path / "nope")


# ---------------------------------------------------------------------------------------------- CheXpert
def _chexpert(root, rows):
    (root / "CheXpert-v1.0-small").mkdir(parents=True)
    (root / "CheXpert-v1.0-small" / "train.csv").write_text("\n".join([CHEXPERT_HEADER, *rows]) + "\n")
    for row in rows:
        write_png(root / row.split(",")[0])
    return root / "CheXpert-v1.0-small"


@pytest.mark.parametrize("policy,expected", [("ones", 1.0), ("zeros", 0.0), ("ignore", math.nan)])
def test_chexpert_uncertainty_policies(tmp_path, policy, expected):
    rows = [
        chexpert_row(
            "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg",
            {"Pleural Effusion": "-1.0", "Cardiomegaly": "1.0", "Edema": "0.0"},
        ),
        chexpert_row("CheXpert-v1.0-small/train/patient00001/study1/view2_lateral.jpg", {}, view="Lateral"),
        chexpert_row(
            "CheXpert-v1.0-small/train/patient00002/study3/view1_frontal.jpg", {"No Finding": "1.0"}
        ),
    ]
    items = read_chexpert(_chexpert(tmp_path, rows), uncertainty=policy)
    assert [it["patient_id"] for it in items] == ["patient00001", "patient00002"]  # lateral filtered out
    first = dict(zip(CHEXPERT_LABELS, items[0]["label"].tolist()))
    assert first["Cardiomegaly"] == 1.0 and first["Edema"] == 0.0 and first["Fracture"] == 0.0  # blank -> 0
    assert (math.isnan(first["Effusion"]) and math.isnan(expected)) or first["Effusion"] == expected
    assert items[0]["label_mask"][CHEXPERT_LABELS.index("Effusion")] == (policy != "ignore")
    assert items[1]["no_finding"] and items[1]["study"] == "patient00002/study3"
    assert len(read_chexpert(tmp_path / "CheXpert-v1.0-small", views=None)) == 3


def test_chexpert_real_header_and_rows(tmp_path):
    lines = real_lines("chexpert_train.csv.gz", 5)
    root = tmp_path / "CheXpert-v1.0-small"
    root.mkdir()
    (root / "train.csv").write_text("\n".join(lines) + "\n")
    for line in lines[1:]:
        write_png(tmp_path / line.split(",")[0])
    items = read_chexpert(root, views=None, uncertainty="ones")
    assert len(items) == 5
    header = lines[0].split(",")
    for line, item in zip(lines[1:], items):
        cells = dict(zip(header, line.split(",")))
        assert item["patient_id"] in cells["Path"] and item["view"] == cells["Frontal/Lateral"]
        effusion = cells["Pleural Effusion"]
        assert item["label"][CHEXPERT_LABELS.index("Effusion")] == (
            1.0 if effusion in ("1.0", "-1.0") else 0.0
        )


def test_chexpert_out_of_range_and_missing_images_in_one_error(tmp_path):
    rows = [
        chexpert_row("CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg", {"Edema": "2.0"}),
        chexpert_row("CheXpert-v1.0-small/train/patient00002/study1/view1_frontal.jpg", {"Edema": "1.0"}),
        chexpert_row("CheXpert-v1.0-small/train/patient00003/study1/view1_frontal.jpg", {}),
    ]
    root = _chexpert(tmp_path, rows)
    (tmp_path / rows[2].split(",")[0]).unlink()
    with pytest.raises(DataError) as err:
        read_chexpert(root)
    assert len(err.value.problems) == 2
    assert f"{root / 'train.csv'}:2" in str(err.value) and "Edema='2.0'" in str(err.value)
    assert "patient00003" in str(err.value)


def test_chexpert_bad_option_names_choices(tmp_path):
    with pytest.raises(ValueError, match="ignore"):
        read_chexpert(tmp_path, uncertainty="ignor")


# ---------------------------------------------------------------------------------------------- MRNet
def test_mrnet_item_per_case_with_three_planes(tmp_path):
    cases = {"0000": (1, 0, 1), "0001": (0, 0, 0), "0002": (1, 1, 0)}
    root = make_mrnet(tmp_path / "mrnet", cases)
    items = read_mrnet(root)
    assert [it["case"] for it in items] == list(cases)
    for it in items:
        assert it["label"].tolist() == list(map(float, cases[it["case"]])) and len(it["label"]) == len(
            MRNET_LABELS
        )
        vols = {p: np.load(it[p]) for p in ("axial", "coronal", "sagittal")}
        assert all(v.shape == (2, 256, 256) and v[0, 0, 0] == int(it["case"]) for v in vols.values())
        assert it["image"] == it["sagittal"] and it["patient_id"] == it["case"]


def test_mrnet_reports_bad_volumes_labels_and_orphans(tmp_path):
    root = make_mrnet(tmp_path / "mrnet", {"0000": (1, 0, 1), "0001": (0, 0, 0), "0002": (1, 1, 0)})
    np.save(root / "train" / "axial" / "0000.npy", np.zeros((2, 128, 128), np.uint8))  # wrong size
    np.save(root / "train" / "coronal" / "0001.npy", np.zeros((2, 256, 256), np.float32))  # wrong dtype
    (root / "train" / "sagittal" / "0002.npy").write_bytes(b"not numpy")  # corrupt
    np.save(root / "train" / "axial" / "0009.npy", np.zeros((2, 256, 256), np.uint8))  # no labels
    (root / "train" / "axial" / "notes.txt").write_text("x")  # unsupported
    with open(root / "train-acl.csv", "a") as f:
        f.write("0003,2\n")
    with pytest.raises(DataError) as err:
        read_mrnet(root)
    text = str(err.value)
    assert len(err.value.problems) == 6
    for needle in (
        "(2, 128, 128)",
        "float32",
        "not a readable .npy",
        "0009.npy",
        "notes.txt",
        "train-acl.csv:4",
    ):
        assert needle in text
