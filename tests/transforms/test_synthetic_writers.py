"""Synthetic-image writers: PNG text chunks and DICOM tags that mark a generated image, read back as one dict."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import torch
from PIL import Image

from medgen import __version__
from medgen.transforms.io import (
    LoadRadiograph,
    read_synthetic_marks,
    write_synthetic_dicom,
    write_synthetic_png,
)
from medgen.transforms.io.synthetic import LT_MAX, ST_MAX, synthetic_dicom_tags
from medgen.transforms.io.writers import read_dicom01, write_dicom, write_png

MODEL = "cxr_text_ldm (autoencoder.pt, unet.pt)"
PROMPT = "Mild cardiomegaly. Small left pleural effusion, no pneumothorax."
PROVENANCE = {"seed": 7, "steps": 50, "guidance": 7.5, "eta": 0.0, "preset": "none"}
SOFTWARE = f"medgen {__version__}"


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.random((40, 32))


def expected_marks(fmt: str, prompt: str = PROMPT) -> dict[str, str]:
    return {
        "synthetic": "true",
        "model": MODEL,
        "prompt": prompt,
        "software": SOFTWARE,
        "format": fmt,
        **{k: str(v) for k, v in PROVENANCE.items()},
    }


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_png_pixels_and_every_mark(tmp_path, image, bit_depth):
    path = write_synthetic_png(
        tmp_path / "a.png", image, {"model": MODEL, "prompt": PROMPT, **PROVENANCE}, bit_depth=bit_depth
    )
    with Image.open(path) as im:
        text, pixels = dict(im.text), np.asarray(im).astype(np.float64)
    top = 2**bit_depth - 1
    assert np.abs(pixels / top - image).max() <= 0.5 / top + 1e-9
    assert text["Software"] == SOFTWARE
    assert text["Source"].startswith("SYNTHETIC") and MODEL in text["Source"]
    assert text["Description"].startswith("SYNTHETIC") and MODEL in text["Description"]
    assert text["Description"].endswith(PROMPT)
    assert "not an acquisition of a patient" in text["Disclaimer"] and text["Creation Time"]
    assert text["medgen:synthetic"] == "true" and text["medgen:model"] == MODEL
    assert text["medgen:prompt"] == PROMPT
    assert all(text[f"medgen:{k}"] == str(v) for k, v in PROVENANCE.items())
    assert read_synthetic_marks(path) == expected_marks("png")
    # what other readers of the project see
    assert torch.allclose(LoadRadiograph()(path)[0].double(), torch.from_numpy(image), atol=0.5 / top + 1e-6)


def test_png_keeps_a_non_latin1_and_a_long_prompt_whole(tmp_path, image):
    prompt = "Épanchement pleural droit; 心脏大小正常. " * 300  # iTXt, 12k characters
    path = write_synthetic_png(
        tmp_path / "u.png", torch.from_numpy(image)[None], {"model": MODEL, "prompt": prompt}
    )
    marks = read_synthetic_marks(path)
    assert marks["prompt"] == prompt and marks["synthetic"] == "true"


def test_dicom_tags_pixels_and_marks(tmp_path, image):
    path = write_synthetic_dicom(tmp_path / "a.dcm", image, MODEL, PROMPT, PROVENANCE)
    ds = pydicom.dcmread(path)
    assert str(ds.PatientName) == "SYNTHETIC^MEDGEN" and ds.PatientID == "SYNTHETIC"
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY"] and ds.BurnedInAnnotation == "NO"
    assert ds.SeriesDescription.startswith("SYNTHETIC") and ds.StudyDescription.startswith("SYNTHETIC")
    assert ds.DerivationDescription.startswith("SYNTHETIC") and MODEL in ds.DerivationDescription
    assert ds.DerivationDescription.endswith(PROMPT) and ds.ImageComments.endswith(f"Prompt: {PROMPT}")
    assert ds.SpecificCharacterSet == "ISO_IR 192" and ds.SoftwareVersions == SOFTWARE
    assert ds.ManufacturerModelName == MODEL and ds.ContentDate
    # the SOP class write_dicom writes, the same in the file meta; no Secondary Capture tag in a DX object
    assert ds.SOPClassUID == ds.file_meta.MediaStorageSOPClassUID == "1.2.840.10008.5.1.4.1.1.1.1"
    assert "ConversionType" not in ds and ds.Modality == "DX"
    assert np.abs(read_dicom01(path) - image).max() <= 0.5 / 4095 + 1e-6
    loaded = LoadRadiograph()(path)
    assert loaded.shape == (1, 40, 32)
    assert torch.allclose(loaded[0].double(), torch.from_numpy(image), atol=0.5 / 4095 + 1e-5)
    assert read_synthetic_marks(path) == expected_marks("dicom")


def test_dicom_uids_differ_between_files(tmp_path, image):
    a = pydicom.dcmread(write_synthetic_dicom(tmp_path / "a.dcm", image, MODEL, PROMPT))
    b = pydicom.dcmread(write_synthetic_dicom(tmp_path / "b.dcm", image, MODEL, PROMPT))
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        assert a.get(keyword) and a.get(keyword) != b.get(keyword)
    assert a.file_meta.MediaStorageSOPInstanceUID == a.SOPInstanceUID


def test_dicom_over_long_prompts(tmp_path, image):
    long = (
        "Stable small right pleural effusion with adjacent atelectasis. " * 40
    ).strip()  # ~2.5k characters
    ds = pydicom.dcmread(write_synthetic_dicom(tmp_path / "l.dcm", image, MODEL, long))
    assert len(ds.DerivationDescription) == ST_MAX and ds.DerivationDescription.endswith("...")
    assert ds.ImageComments.endswith(long)
    assert read_synthetic_marks(tmp_path / "l.dcm")["prompt"] == long

    huge = "No acute cardiopulmonary abnormality. " * 400  # ~15k characters: over the LT limit
    ds = pydicom.dcmread(write_synthetic_dicom(tmp_path / "h.dcm", image, MODEL, huge.strip()))
    assert len(ds.ImageComments) == LT_MAX and ds.ImageComments.endswith("...")
    marks = read_synthetic_marks(tmp_path / "h.dcm")
    assert marks["prompt_truncated"] == "true" and huge.startswith(marks["prompt"][:-3])


def test_dicom_unicode_prompt_round_trip(tmp_path, image):
    prompt = "Épanchement pleural droit. 心脏大小正常."
    path = write_synthetic_dicom(tmp_path / "u.dcm", image, MODEL, prompt, {"seed": 1})
    assert read_synthetic_marks(path)["prompt"] == prompt
    assert pydicom.dcmread(path).DerivationDescription.endswith(prompt)


def test_files_without_marks_and_other_files(tmp_path, image):
    assert read_synthetic_marks(write_png(tmp_path / "plain.png", image)) == {}
    assert read_synthetic_marks(write_dicom(tmp_path / "plain.dcm", image)) == {}
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="neither a PNG nor a DICOM"):
        read_synthetic_marks(tmp_path / "notes.txt")
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_synthetic_marks(tmp_path / "missing.png")


@pytest.mark.parametrize(
    "provenance, message",
    [
        ({"prompt": PROMPT}, "`model` must be a non-empty"),
        ({"model": MODEL, "prompt": "  "}, "`prompt` must be the non-empty"),
        ({"model": MODEL, "prompt": PROMPT, "synthetic": "false"}, "'synthetic' is set by the writer"),
        ({"model": MODEL, "prompt": PROMPT, "bad key": 1}, "provenance key 'bad key' must be"),
        ({"model": MODEL, "prompt": PROMPT, "seed": None}, "provenance 'seed' is None"),
    ],
)
def test_png_refuses_bad_provenance(tmp_path, image, provenance, message):
    with pytest.raises(ValueError, match=message):
        write_synthetic_png(tmp_path / "x.png", image, provenance)
    assert not (tmp_path / "x.png").exists()


def test_dicom_refuses_bad_input(tmp_path, image):
    with pytest.raises(ValueError, match="provenance model='other' differs"):
        synthetic_dicom_tags(MODEL, PROMPT, {"model": "other"})
    with pytest.raises(ValueError, match="one-line name"):
        write_synthetic_dicom(tmp_path / "x.dcm", image, "two\nlines", PROMPT)
    with pytest.raises(ValueError, match=r"expected one grey image"):
        write_synthetic_dicom(tmp_path / "x.dcm", np.zeros((3, 8, 8)), MODEL, PROMPT)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        write_synthetic_dicom(tmp_path / "x.dcm", image * 2, MODEL, PROMPT)
    with pytest.raises(ValueError, match="provenance takes"):
        write_synthetic_dicom(tmp_path / "x.dcm", image, MODEL, PROMPT, {"notes": "x" * LT_MAX})
