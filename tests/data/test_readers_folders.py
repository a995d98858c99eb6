"""Generic DICOM and NIfTI folder readers: grouping, patient ids, and one error for every bad file; the
labelled folder's report-text column."""

from __future__ import annotations

import csv
import shutil

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from readers_fixtures import write_png

from medgen.data.datalist import load_datalist
from medgen.data.errors import DataError
from medgen.data.readers import read_dicom_folder, read_labelled_folder, read_nifti_folder
from medgen.data.report_findings import parse_findings


def _series(folder, n_slices, patient="P1"):
    """``n_slices`` copies of pydicom's CT_small as one series, written in shuffled z order."""
    folder.mkdir(parents=True, exist_ok=True)
    uid = generate_uid()
    for k, z in enumerate([2, 0, 1, 3, 4][:n_slices]):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.PatientID = uid, generate_uid(), patient
        ds.InstanceNumber = 10 - z  # deliberately opposite to the position order
        ds.ImagePositionPatient = [0.0, 0.0, float(z) * 5.0]
        ds.save_as(folder / f"{uid[-8:]}_{k}.dcm")
    return uid


def test_dicom_series_grouped_and_sorted_along_normal(tmp_path):
    ct_uid = _series(tmp_path / "p1" / "ct", 3)
    shutil.copy(get_testdata_file("MR_small.dcm"), tmp_path / "p2_mr.dcm")
    (tmp_path / "DICOMDIR").write_bytes(b"x")  # ignored by name
    (tmp_path / "p1" / "notes.txt").write_text("sidecar")  # ignored by pattern
    items = read_dicom_folder(tmp_path)
    by_uid = {it["series_uid"]: it for it in items}
    assert len(items) == 2
    ct = by_uid[ct_uid]
    assert ct["n_files"] == 3 and ct["image"] == str(tmp_path / "p1" / "ct") and ct["patient_id"] == "P1"
    mr = next(it for it in items if it["series_uid"] != ct_uid)
    assert mr["image"] == str(tmp_path / "p2_mr.dcm") and mr["modality"] == "MR" and mr["n_files"] == 1

    # two series sharing a folder: the image is the file list, sorted by position along the slice normal
    _series(tmp_path / "p1" / "ct", 2, patient="P1")
    ct = {it["series_uid"]: it for it in read_dicom_folder(tmp_path)}[ct_uid]
    zs = [float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]) for f in ct["image"]]
    assert zs == sorted(zs) and len(zs) == 3


def test_dicom_folder_lists_every_bad_file_once(tmp_path):
    _series(tmp_path / "ok", 2)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "photo.jpg").write_bytes(b"\xff\xd8\xff not dicom")
    shutil.copy(get_testdata_file("test-SR.dcm"), tmp_path / "bad" / "report.dcm")
    (tmp_path / "bad" / "cut.dcm").write_bytes(open(get_testdata_file("CT_small.dcm"), "rb").read()[:700])
    with pytest.raises(DataError) as err:
        read_dicom_folder(tmp_path)
    text = str(err.value)
    assert len(err.value.problems) == 3
    assert (
        "photo.jpg: not a DICOM file" in text and "report.dcm: no Rows/Columns" in text and "cut.dcm" in text
    )

    report = tmp_path.parent / "skipped_dicom.tsv"
    items = read_dicom_folder(tmp_path, on_error="skip", skip_report=report)
    assert len(items) == 1 and items[0]["n_files"] == 2
    assert sorted(line.split("\t")[0].rsplit("/", 1)[-1] for line in report.read_text().splitlines()[1:]) == [
        "cut.dcm",
        "photo.jpg",
        "report.dcm",
    ]


def _nifti(path, shape=(4, 5, 6)):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.zeros(shape, np.float32), np.eye(4)), path)


def test_nifti_folder_patient_ids(tmp_path):
    bids = tmp_path / "bids"
    _nifti(bids / "sub-01" / "anat" / "sub-01_T1w.nii.gz")
    _nifti(bids / "sub-01" / "ses-2" / "anat" / "sub-01_ses-2_T1w.nii")
    _nifti(bids / "sub-02" / "anat" / "sub-02_T1w.nii.gz", shape=(4, 5))
    (bids / "sub-02" / "anat" / "sub-02_T1w.json").write_text("{}")
    items = read_nifti_folder(bids)
    assert [(it["patient_id"], it["ndim"]) for it in items] == [("sub-01", 3), ("sub-01", 3), ("sub-02", 2)]
    flat = tmp_path / "flat"
    _nifti(flat / "case_a.nii.gz")
    _nifti(flat / "case_b.nii")
    assert [it["patient_id"] for it in read_nifti_folder(flat)] == ["case_a", "case_b"]
    assert {it["patient_id"] for it in read_nifti_folder(flat, patient_id=lambda p: "same")} == {"same"}


def test_nifti_folder_lists_corrupt_and_unsupported_files(tmp_path):
    _nifti(tmp_path / "a" / "good.nii.gz")
    (tmp_path / "a" / "broken.nii.gz").write_bytes(b"garbage" * 10)
    (tmp_path / "a" / "scan.mha").write_bytes(b"ObjectType = Image")
    with pytest.raises(DataError) as err:
        read_nifti_folder(tmp_path)
    text = str(err.value)
    assert len(err.value.problems) == 2 and "broken.nii.gz: unreadable NIfTI" in text
    assert "scan.mha: unsupported file type" in text
    items = read_nifti_folder(tmp_path, on_error="skip", skip_report=tmp_path.parent / "skip.tsv")
    assert [it["name"] for it in items] == ["a/good.nii.gz"] and items[0]["patient_id"] == "a"


REPORTS = [
    "Small left pleural effusion. No pneumothorax.",
    "The heart is not enlarged. No pleural effusion or pneumothorax.",
    'Moderate right pleural effusion, with a "meniscus" sign.\nIMPRESSION: 1) Effusion.',  # quoted, multi-line
    "Lungs are clear, no effusion.",
]


def _report_folder(root, reports=REPORTS, n=10):
    """PNGs + labels.csv with image, patient_id, Effusion and a free-text report column (commas, quotes and
    line breaks inside cells, as a spreadsheet export writes them)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "patient_id", "Effusion", "report"])
        for i in range(n):
            write_png(root / "images" / f"{i}.png", value=10 * i)
            text = reports[i % len(reports)]
            w.writerow([f"images/{i}.png", f"p{i}", int(parse_findings(text, ["Effusion"])[0]), text])
    return root


def test_labelled_folder_report_column(tmp_path):
    root = _report_folder(tmp_path / "cxr")
    items = read_labelled_folder(root, report_column="report", check="exists")
    assert [it["report"] for it in items[:4]] == REPORTS
    assert all(it["labels"] == ["Effusion"] for it in items)  # the report column is not a finding column
    assert "report" not in items[0]["labels"] and set(items[0]) >= {"image", "label", "report", "patient_id"}
    for it in items:  # the labels were written from the parser's reading of each report
        assert it["label"].tolist() == parse_findings(it["report"], ["Effusion"]).tolist()
    with pytest.raises(DataError, match=r"labels.csv: report_column 'Report' not found; columns are \["):
        read_labelled_folder(root, report_column="Report", check="exists")
    with pytest.raises(DataError, match="report_column 'report' is also metadata_columns"):
        read_labelled_folder(root, report_column="report", metadata_columns=["report"], check="exists")
    with pytest.raises(DataError, match=r"\['report'\] are neither.*report_column"):
        read_labelled_folder(root, check="exists")  # an unlisted text column is named, with the option


def test_empty_report_cells_are_bad_rows(tmp_path):
    root = _report_folder(tmp_path / "cxr", reports=REPORTS[:3] + ["  "], n=8)  # rows 4 and 8 have no text
    with pytest.raises(DataError) as err:
        read_labelled_folder(root, report_column="report", check="exists")
    # CSV line numbers (rows 3 and 7 end on lines 6 and 11: the quoted multi-line cells count their lines)
    assert [p.where for p in err.value.problems] == ["labels.csv:6", "labels.csv:11"]
    assert "empty report text in column 'report'" in str(err.value)
    skip = tmp_path / "skipped.tsv"
    items = read_labelled_folder(
        root, report_column="report", check="exists", on_error="skip", skip_report=skip
    )
    assert len(items) == 6 and all(it["report"] for it in items)
    assert len(skip.read_text().splitlines()) == 3  # header + the two rows, never skipped silently


def test_report_column_through_load_datalist(tmp_path):
    root = _report_folder(tmp_path / "cxr")
    kwargs = {"report_column": "report", "check": "exists"}  # decoding would import torch: tested elsewhere
    splits = load_datalist("labelled_folder", root, kwargs, requires=("image", "report"), workflow="text")
    items = splits.train + splits.val + splits.test
    assert len(items) == 10 and all(isinstance(it["report"], str) and it["report"] for it in items)
    assert {it["report"] for it in items} == set(REPORTS)
    # without report_column no item has a report, even with the column kept as metadata: refused, with the fix
    with pytest.raises(
        DataError, match=r"needs 'report'.*labelled_folder with dataset_kwargs \{report_column"
    ):
        load_datalist(
            "labelled_folder",
            root,
            {"metadata_columns": ["report"], "check": "exists"},
            requires=("image", "report"),
            workflow="text",
        )
