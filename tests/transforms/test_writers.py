"""Writers and the phantom writer: PNG / DICOM / NIfTI round trips within 1/4095."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from medgen.data.labels import PHANTOM_LABELS
from medgen.data.phantom import render_phantom
from medgen.data.phantom.writer import decode_bitfield, write_phantom_dataset
from medgen.transforms.io.writers import read_dicom01, write_dicom, write_nifti, write_png16

TOL = 1.0 / 4095


@pytest.fixture(scope="module")
def image():
    return render_phantom(2, 128, seed=0).image


def test_png16_round_trip(tmp_path, image):
    from PIL import Image

    p = write_png16(tmp_path / "a.png", image)
    back = np.asarray(Image.open(p)).astype(np.float64) / 65535
    assert np.abs(back - image).max() <= 0.5 / 65535 + 1e-9


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_dicom_round_trip(tmp_path, image, photometric):
    import pydicom

    p = write_dicom(
        tmp_path / "a.dcm", image, (0.5, 0.6), photometric=photometric, tags={"PatientID": "PHANTOM-0-1"}
    )
    ds = pydicom.dcmread(p)
    assert ds.Modality == "DX" and ds.PhotometricInterpretation == photometric
    assert ds.BitsAllocated == 16 and ds.BitsStored == 12 and ds.PatientName == "PHANTOM^SYNTHETIC"
    assert [float(v) for v in ds.PixelSpacing] == [0.5, 0.6] and ds.PatientID == "PHANTOM-0-1"
    raw = ds.pixel_array.astype(np.float64) / 4095
    if photometric == "MONOCHROME1":
        raw = 1.0 - raw
        assert ds.pixel_array.max() == 4095 - round(image.min() * 4095)
    assert np.abs(raw - image).max() <= TOL
    assert np.abs(read_dicom01(p) - image).max() <= TOL


def test_dicom_template_tags(tmp_path, image):
    import pydicom

    first = pydicom.dcmread(write_dicom(tmp_path / "a.dcm", image, 1.0, tags={"PatientID": "X1"}))
    second = pydicom.dcmread(write_dicom(tmp_path / "b.dcm", image[:64], 1.0, template=first))
    assert second.PatientID == "X1" and second.StudyInstanceUID == first.StudyInstanceUID
    assert second.SOPInstanceUID != first.SOPInstanceUID and second.Rows == 64


def test_nifti_round_trip(tmp_path, image):
    import nibabel as nib

    img = nib.load(write_nifti(tmp_path / "a.nii.gz", image, 0.42))
    np.testing.assert_allclose(np.asarray(img.dataobj).T, image, atol=1e-7)
    assert np.allclose(img.header.get_zooms()[:2], (0.42, 0.42))


@pytest.mark.parametrize("bad", [np.full((4, 4), 1.5), np.full((4, 4), np.nan), np.zeros((2, 4, 4))])
def test_writers_refuse_bad_input(tmp_path, bad):
    with pytest.raises(ValueError, match="a.png"):
        write_png16(tmp_path / "a.png", bad)


def test_write_phantom_dataset_and_loaders_agree(tmp_path):
    from PIL import Image

    outs = {
        fmt: write_phantom_dataset(tmp_path / fmt, 3, 128, fmt=fmt, seed=0, progress=False)
        for fmt in ("png", "dicom", "nifti")
    }
    rows = list(csv.DictReader(open(outs["png"] / "labels.csv")))
    assert [r["path"] for r in rows] == [f"images/{i:06d}.png" for i in range(3)]
    reports = list(csv.DictReader(open(outs["dicom"] / "reports.csv")))
    assert set(reports[0]) == {"path", "patient_id", "findings", "impression"}
    meta = json.loads((outs["png"] / "phantom.json").read_text())
    assert meta["mask_bits"]["Atelectasis"] == 0 and meta["size"] == 128
    for i, r in enumerate(rows):
        s = render_phantom(i, 128, 0)
        assert r["patient_id"] == s.patient_id
        assert [int(r[k]) for k in PHANTOM_LABELS] == [int(v) for v in s.labels]
        masks = decode_bitfield(np.asarray(Image.open(outs["png"] / f"masks/{i:06d}.png")))
        for k in PHANTOM_LABELS:
            np.testing.assert_array_equal(masks[k], s.masks[k])
        np.testing.assert_array_equal(masks["lungs"], s.lungs)

    # the same phantom loaded by medgen's loader from DICOM and PNG agrees within 1/4095
    from medgen.transforms.io import LoadRadiograph

    load = LoadRadiograph()
    for i in range(3):
        png = np.asarray(load(str(outs["png"] / f"images/{i:06d}.png")))[0]
        dcm = np.asarray(load(str(outs["dicom"] / f"images/{i:06d}.dcm")))[0]
        nii = np.asarray(load(str(outs["nifti"] / f"images/{i:06d}.nii.gz")))[0]
        assert png.shape == dcm.shape == nii.shape
        assert np.abs(png - dcm).max() <= TOL + 1e-6
        assert np.abs(png - nii).max() <= TOL + 1e-6


def test_write_phantom_dataset_refuses_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="jpeg"):
        write_phantom_dataset(tmp_path, 1, 128, fmt="jpeg", progress=False)
