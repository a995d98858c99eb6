"""LoadRadiograph: DICOM (pydicom and ITK, compressed syntaxes), PNG/JPEG, NIfTI, and the refusal messages.

DICOM inputs are pydicom's own test files shipped in its wheel (``download=False``: nothing is fetched).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pydicom
import pytest
import torch
from monai.data import MetaTensor
from PIL import Image
from pydicom.data import get_testdata_file

from medgen.transforms.io import (
    LoadRadiograph,
    LoadRadiographd,
    RadiographLoadError,
    SaveRadiograph,
    SaveRadiographd,
)
from medgen.transforms.io.writers import write_dicom, write_nifti, write_png16


def dicom_file(name: str) -> str:
    path = get_testdata_file(name, download=False)
    assert path is not None, f"{name} is not shipped in this pydicom wheel"
    return path


def phantom_12bit(shape=(48, 40), seed=0) -> np.ndarray:
    """A smooth image quantised to 12 bits, the way the phantom's writers store it."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[0], : shape[1]]
    img = 0.5 + 0.3 * np.sin(x / 5.0) * np.cos(y / 7.0) + 0.05 * rng.standard_normal(shape)
    return np.round(np.clip(img, 0, 1) * 4095) / 4095


# ---- DICOM: compressed transfer syntaxes ------------------------------------------------------------------
LOSSLESS_MR = ["MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm"]


@pytest.mark.parametrize("reader", ["pydicom", "itk"])
@pytest.mark.parametrize("name", LOSSLESS_MR)
def test_lossless_compressed_dicom_equals_uncompressed(name, reader):
    ref = LoadRadiograph()(dicom_file("MR_small.dcm"))
    img = LoadRadiograph(reader=reader)(dicom_file(name))
    assert img.shape == (1, 64, 64) and img.dtype == torch.float32
    assert torch.equal(img, ref)
    assert img.meta["transfer_syntax"] == str(pydicom.dcmread(dicom_file(name)).file_meta.TransferSyntaxUID)


def test_jpeg2000_lossy_decodes_the_same_with_pydicom_and_itk():
    a = LoadRadiograph()(dicom_file("JPEG2000.dcm"))
    b = LoadRadiograph(reader="itk")(dicom_file("JPEG2000.dcm"))
    assert a.shape == (1, 1024, 256)
    assert float((a - b).abs().max()) <= 1 / 65535 + 1e-7


def test_jpeg_extended_12bit_decodes_and_itk_reads_the_file_pydicom_cannot():
    # JPGExtended.dcm and JPEG-lossy.dcm hold the same 12-bit image; pylibjpeg rejects the latter's SOS marker
    a = LoadRadiograph()(dicom_file("JPGExtended.dcm"))
    assert a.meta["bits_stored"] == 12 and a.meta["transfer_syntax"] == "1.2.840.10008.1.2.4.51"
    raw = pydicom.dcmread(dicom_file("JPGExtended.dcm")).pixel_array
    np.testing.assert_allclose(a[0].numpy(), raw / 4095.0, atol=1e-6)
    b = LoadRadiograph(reader="itk")(dicom_file("JPEG-lossy.dcm"))
    assert float((a - b).abs().max()) <= 1 / 4095 + 1e-6
    with pytest.raises(RadiographLoadError) as err:
        LoadRadiograph()(dicom_file("JPEG-lossy.dcm"))
    msg = str(err.value)
    assert "JPEG-lossy.dcm" in msg and "1.2.840.10008.1.2.4.51" in msg and "JPEG Extended" in msg
    assert "pylibjpeg-libjpeg" in msg and "reader='itk'" in msg


def test_unsupported_transfer_syntax_names_uid_and_fix(tmp_path):
    from pydicom.encaps import encapsulate

    ds = pydicom.dcmread(dicom_file("MR_small.dcm"))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: no Python decoder exists
    ds.PixelData = encapsulate([b"\0" * 128])
    ds["PixelData"].VR = "OB"
    path = tmp_path / "video.dcm"
    ds.save_as(path)
    with pytest.raises(RadiographLoadError, match="1.2.840.10008.1.2.4.100 \\(MPEG2") as err:
        LoadRadiograph()(path)
    assert "video.dcm" in str(err.value) and "transcode" in str(err.value)


# ---- DICOM: intensity rules ---------------------------------------------------------------------------
def test_ct_rescale_scales_by_stored_bits_not_by_image_range():
    ds = pydicom.dcmread(dicom_file("CT_small.dcm"))
    assert ds.PixelRepresentation == 1 and ds.BitsStored == 16 and float(ds.RescaleIntercept) == -1024
    img = LoadRadiograph()(dicom_file("CT_small.dcm"))
    # the intercept cancels: HU scaled over the rescaled 16-bit signed range equals the raw value's position
    expected = (ds.pixel_array.astype(np.float64) + 32768) / 65535
    np.testing.assert_allclose(img[0].numpy(), expected, atol=1e-6)
    assert img.meta["intensity_range"].tolist() == [-32768 - 1024, 32767 - 1024]
    minmax = LoadRadiograph(normalize="minmax")(dicom_file("CT_small.dcm"))
    assert float(minmax.min()) == 0.0 and float(minmax.max()) == 1.0


def test_window_center_width_applied_with_linear_rule(tmp_path):
    a = phantom_12bit()
    path = write_dicom(tmp_path / "w.dcm", a)
    ds = pydicom.dcmread(path)
    ds.WindowCenter, ds.WindowWidth = 2048, 1025
    ds.save_as(path)
    img = LoadRadiograph()(path)
    assert img.meta["voi"] == "window"
    stored = np.round(a * 4095)
    # DICOM LINEAR window (PS3.3 C.11.2.1.2.1): c - 0.5 = 2047.5, w - 1 = 1024
    expected = np.clip((stored - 2047.5) / 1024 + 0.5, 0, 1)
    np.testing.assert_allclose(img[0].numpy(), expected, atol=1e-6)
    raw = LoadRadiograph(voi=False)(path)
    np.testing.assert_allclose(raw[0].numpy(), a, atol=1e-6)


@pytest.mark.parametrize("reader", ["pydicom", "itk"])
def test_voi_window_matches_between_readers(reader):
    ref = LoadRadiograph()(dicom_file("693_J2KI.dcm"))
    img = LoadRadiograph(reader=reader)(dicom_file("693_J2KI.dcm"))
    assert img.meta["voi"] == "window" and img.meta["modality"] == "CT"
    assert float((img - ref).abs().max()) < 1e-6


def test_monochrome1_is_inverted(tmp_path):
    a = phantom_12bit()
    m2 = LoadRadiograph()(write_dicom(tmp_path / "m2.dcm", a))
    m1 = LoadRadiograph()(write_dicom(tmp_path / "m1.dcm", a, photometric="MONOCHROME1"))
    assert m1.meta["inverted"] and not m2.meta["inverted"]
    assert m1.meta["photometric_interpretation"] == "MONOCHROME1"
    assert torch.allclose(m1, m2, atol=1e-6)


# ---- the phantom's writers: the same 12-bit data from three formats ------------------------------------
def test_dicom_png16_nifti_agree_within_one_12bit_level(tmp_path):
    a = phantom_12bit(shape=(48, 40))
    loader = LoadRadiograph()
    dcm = loader(write_dicom(tmp_path / "x.dcm", a, pixel_spacing_mm=(0.2, 0.3)))
    png = loader(write_png16(tmp_path / "x.png", a))
    nii = loader(write_nifti(tmp_path / "x.nii.gz", a, pixel_spacing_mm=(0.2, 0.3)))
    for img in (dcm, png, nii):
        assert isinstance(img, MetaTensor) and img.shape == (1, 48, 40)
        np.testing.assert_allclose(img[0].numpy(), a, atol=1 / 4095)
    assert float((dcm - png).abs().max()) <= 1 / 4095
    assert dcm.meta["bits_stored"] == 12 and png.meta["bits_stored"] == 16 and nii.meta["bits_stored"] == 0
    np.testing.assert_allclose(dcm.meta["spacing"], [0.2, 0.3])
    np.testing.assert_allclose(nii.meta["spacing"], [0.2, 0.3])
    np.testing.assert_allclose(dcm.pixdim[:2].numpy(), [0.2, 0.3])
    assert not png.meta["spacing_known"] and dcm.meta["spacing_known"]
    assert dcm.meta["original_shape"].tolist() == [48, 40]
    assert dcm.meta["filename_or_obj"].endswith("x.dcm") and "PatientName" not in dcm.meta


# ---- DICOM refusals ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, needle", [("test-SR.dcm", "Modality=SR"), ("rtplan.dcm", "Modality=RTPLAN")])
def test_non_image_dicom_refused(name, needle):
    with pytest.raises(RadiographLoadError, match="without pixel data") as err:
        LoadRadiograph()(dicom_file(name))
    assert name in str(err.value) and needle in str(err.value)


@pytest.mark.parametrize("reader", ["pydicom", "itk"])
def test_truncated_dicom_refused(reader):
    with pytest.raises(RadiographLoadError, match="truncated") as err:
        LoadRadiograph(reader=reader)(dicom_file("MR_truncated.dcm"))
    msg = str(err.value)
    assert "MR_truncated.dcm" in msg and "8130 bytes" in msg and "64 x 64 x 16" in msg and "8192" in msg
    assert "structured report" not in msg


@pytest.mark.parametrize("cut", [300, 1000, -1000])  # file meta only; header only; inside the pixels
def test_truncated_header_or_pixel_data_refused(tmp_path, cut):
    data = open(dicom_file("MR_small.dcm"), "rb").read()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[:cut])
    with pytest.raises(RadiographLoadError, match="cut.dcm.*truncated") as err:
        LoadRadiograph()(path)
    assert "structured report" not in str(err.value)


def test_empty_dicom_refused(tmp_path):
    path = tmp_path / "empty.dcm"
    path.write_bytes(b"")
    with pytest.raises(RadiographLoadError, match=r"empty.dcm: empty DICOM file \(0 bytes\)"):
        LoadRadiograph()(path)


def test_colour_dicom_refused_after_decoding():
    with pytest.raises(RadiographLoadError) as err:
        LoadRadiograph()(dicom_file("SC_rgb_jpeg_dcmtk.dcm"))
    msg = str(err.value)
    assert (
        "SC_rgb_jpeg_dcmtk.dcm" in msg and "colour" in msg and "decoded fine" in msg and "MONOCHROME2" in msg
    )
    with pytest.raises(RadiographLoadError, match="PALETTE COLOR"):
        LoadRadiograph()(dicom_file("examples_palette.dcm"))


def test_grey_dicom_stored_as_rgb_is_read_as_grey(tmp_path):
    grey = np.random.default_rng(1).integers(0, 256, (12, 10), dtype=np.uint8)
    ds = pydicom.dcmread(dicom_file("MR_small.dcm"))
    for tag in ("WindowCenter", "WindowWidth"):
        del ds[tag]
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 12, 10, 3, "RGB"
    ds.PlanarConfiguration, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = (
        0,
        8,
        8,
        7,
        0,
    )
    ds.PixelData = np.repeat(grey[..., None], 3, axis=-1).tobytes()
    ds.save_as(tmp_path / "rgb_grey.dcm")
    img = LoadRadiograph()(tmp_path / "rgb_grey.dcm")
    np.testing.assert_allclose(img[0].numpy(), grey / 255.0, atol=1e-7)
    assert img.meta["photometric_interpretation"] == "MONOCHROME2" and img.meta["bits_stored"] == 8


@pytest.mark.parametrize("reader", ["pydicom", "itk"])
def test_multiframe_needs_frame(reader):
    path = dicom_file("rtdose.dcm")
    with pytest.raises(RadiographLoadError, match=r"15 frames.*frame=<index> \(0..14\)"):
        LoadRadiograph(reader=reader)(path)
    img = LoadRadiograph(reader=reader, frame=3)(path)
    expected = pydicom.dcmread(path).pixel_array[3] / (2.0**32 - 1)
    np.testing.assert_allclose(img[0].numpy(), expected, atol=1e-6)
    assert img.meta["frame"] == 3
    with pytest.raises(RadiographLoadError, match="out of range"):
        LoadRadiograph(reader=reader, frame=15)(path)


# ---- PNG / JPEG / NIfTI ----------------------------------------------------------------------------------
def test_png_8_and_16_bit_scaled_by_container_depth(tmp_path):
    v8 = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(v8).save(tmp_path / "a.png")
    img8 = LoadRadiograph()(tmp_path / "a.png")
    np.testing.assert_allclose(img8[0].numpy(), v8 / 255.0, atol=1e-7)
    v16 = (np.arange(16 * 8, dtype=np.uint32) * 511).astype(np.uint16).reshape(16, 8)
    Image.fromarray(v16).save(tmp_path / "b.png")
    img16 = LoadRadiograph()(tmp_path / "b.png")
    assert img16.shape == (1, 16, 8) and img16.meta["bits_stored"] == 16
    np.testing.assert_allclose(img16[0].numpy(), v16 / 65535.0, atol=1e-7)


def test_png_with_explicit_bit_depth(tmp_path):
    v = np.array([[0, 1000, 4095]], dtype=np.uint16)
    Image.fromarray(v).save(tmp_path / "raw12.png")
    img = LoadRadiograph(bit_depth=12)(tmp_path / "raw12.png")
    np.testing.assert_allclose(img[0].numpy(), v / 4095.0, atol=1e-7)
    Image.fromarray(np.array([[0, 5000]], dtype=np.uint16)).save(tmp_path / "over.png")
    with pytest.raises(RadiographLoadError, match="over.png.*outside"):
        LoadRadiograph(bit_depth=12)(tmp_path / "over.png")
    with pytest.raises(RadiographLoadError, match="BitsStored"):
        LoadRadiograph(bit_depth=12)(dicom_file("MR_small.dcm"))


def test_rgb_with_equal_channels_is_grey_and_colour_is_refused(tmp_path):
    grey = np.random.default_rng(0).integers(0, 256, (20, 30), dtype=np.uint8)
    Image.fromarray(np.stack([grey] * 3, -1)).save(tmp_path / "grey_rgb.png")
    Image.fromarray(np.stack([grey] * 3, -1)).save(tmp_path / "grey_rgb.jpg", quality=100)
    img = LoadRadiograph()(tmp_path / "grey_rgb.png")
    np.testing.assert_allclose(img[0].numpy(), grey / 255.0, atol=1e-7)
    jpg = LoadRadiograph()(tmp_path / "grey_rgb.jpg")  # grey in YCbCr has flat chroma: decodes to R = G = B
    assert jpg.shape == (1, 20, 30) and float((jpg[0] - img[0]).abs().mean()) < 3 / 255
    colour = np.stack([grey, 255 - grey, grey], -1)
    Image.fromarray(colour).save(tmp_path / "colour.png")
    with pytest.raises(RadiographLoadError, match="colour.png: colour image.*grayscale"):
        LoadRadiograph()(tmp_path / "colour.png")


def test_jpeg_grey_loads(tmp_path):
    grey = np.full((16, 24), 128, dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "g.jpg")
    img = LoadRadiograph()(tmp_path / "g.jpg")
    assert img.shape == (1, 16, 24) and abs(float(img.mean()) - 128 / 255) < 2 / 255


def test_nifti_rules(tmp_path):
    import nibabel as nib

    data = np.linspace(-2, 5, 12 * 10, dtype=np.float32).reshape(10, 12)  # (x, y)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "hu.nii.gz")
    with pytest.raises(RadiographLoadError, match="hu.nii.gz.*normalize='minmax'"):
        LoadRadiograph()(tmp_path / "hu.nii.gz")
    img = LoadRadiograph(normalize="minmax")(tmp_path / "hu.nii.gz")
    assert img.shape == (1, 12, 10) and float(img.min()) == 0 and float(img.max()) == 1
    np.testing.assert_allclose(img[0].numpy(), ((data - data.min()) / (data.max() - data.min())).T, atol=1e-6)
    u16 = (np.arange(120, dtype=np.uint16) * 30).reshape(10, 12)
    nifti = nib.Nifti1Image(u16, np.eye(4))
    nifti.header["cal_min"], nifti.header["cal_max"] = 0, 4095
    nib.save(nifti, tmp_path / "cal.nii")
    np.testing.assert_allclose(LoadRadiograph()(tmp_path / "cal.nii")[0].numpy(), u16.T / 4095, atol=1e-6)
    vol = np.zeros((8, 6, 3), dtype=np.uint8)
    vol[..., 2] = 255
    nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / "vol.nii.gz")
    with pytest.raises(RadiographLoadError, match="3D NIfTI.*frame="):
        LoadRadiograph()(tmp_path / "vol.nii.gz")
    assert float(LoadRadiograph(frame=2)(tmp_path / "vol.nii.gz").min()) == 1.0


def test_unknown_format_and_missing_file(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(RadiographLoadError, match="notes.txt: unknown image format"):
        LoadRadiograph()(tmp_path / "notes.txt")
    with pytest.raises(RadiographLoadError, match="not found"):
        LoadRadiograph()(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="did you mean"):
        LoadRadiograph(reader="itkk")


def test_dictionary_version(tmp_path):
    a = phantom_12bit()
    path = write_png16(tmp_path / "d.png", a)
    out = LoadRadiographd(["image", "label"], allow_missing_keys=True)({"image": str(path), "other": 1})
    assert out["other"] == 1 and "label" not in out
    np.testing.assert_allclose(out["image"][0].numpy(), a, atol=1 / 4095)
    with pytest.raises(KeyError):
        LoadRadiographd("image")({"other": 1})


# ---- SaveRadiograph(d): the writer path of SR inference and bundle post-processing ---------------------
def _save_round_trip(tmp_path, src, **load_kwargs):
    """Load ``src``, upscale x2 (nearest), write it back with SaveRadiographd; return (source, output) loaded."""
    img = LoadRadiograph(**load_kwargs)(src)
    pred = torch.repeat_interleave(torch.repeat_interleave(img.as_tensor(), 2, dim=1), 2, dim=2)
    out = SaveRadiographd("pred", output_dir=tmp_path / "out")({"image": img, "pred": pred})
    return img, out["pred_path"]


@pytest.mark.parametrize(
    "name, save, mode",
    [
        ("a8.png", lambda a, p: Image.fromarray(np.round(a * 255).astype(np.uint8)).save(p), "L"),
        ("a16.png", lambda a, p: Image.fromarray(np.round(a * 65535).astype(np.uint16)).save(p), "I;16"),
        (
            "rgb.png",
            lambda a, p: Image.fromarray(np.round(a * 255).astype(np.uint8)).convert("RGB").save(p),
            "L",
        ),
        ("a.jpg", lambda a, p: Image.fromarray(np.round(a * 255).astype(np.uint8)).save(p, quality=95), "L"),
    ],
)
def test_save_radiographd_keeps_pillow_format_and_depth(tmp_path, name, save, mode):
    a = phantom_12bit()
    save(a, tmp_path / name)
    img, out = _save_round_trip(tmp_path, tmp_path / name)
    stem, suffix = name.split(".")
    assert out == str(tmp_path / "out" / f"{stem}_sr.{suffix}")
    with Image.open(out) as im:
        assert im.mode == mode and im.size == (80, 96)
        assert im.format == ("JPEG" if suffix == "jpg" else "PNG")
    back = LoadRadiograph()(out)
    tol = 3 / 255 if suffix == "jpg" else 1e-6
    assert abs(float(back.mean()) - float(img.mean())) < tol


def test_save_radiograph_png_with_bit_depth_and_spacing(tmp_path):
    a = phantom_12bit()
    path = tmp_path / "twelve.png"
    Image.fromarray(np.round(a * 4095).astype(np.uint16)).save(path, dpi=(254, 254))  # 0.1 mm, 12-bit values
    img, out = _save_round_trip(tmp_path, path, bit_depth=12)
    with Image.open(out) as im:
        assert int(np.asarray(im).max()) <= 4095  # still 12-bit values in the 16-bit container
    back = LoadRadiograph(bit_depth=12)(out)
    np.testing.assert_allclose(back.meta["spacing"], [0.05, 0.05], rtol=0.01)
    assert abs(float(back.mean()) - float(img.mean())) < 1e-6


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_save_radiographd_dicom_keeps_encoding(tmp_path, photometric):
    src = write_dicom(tmp_path / "x.dcm", phantom_12bit(), pixel_spacing_mm=0.2, photometric=photometric)
    img, out = _save_round_trip(tmp_path, src)
    ds, lr = pydicom.dcmread(out), pydicom.dcmread(src)
    assert (
        ds.PhotometricInterpretation == photometric
        and ds.BitsStored == 12
        and (ds.Rows, ds.Columns) == (96, 80)
    )
    assert [float(v) for v in ds.PixelSpacing] == pytest.approx([0.1, 0.1]) and ds.ImageType[0] == "DERIVED"
    assert ds.SOPInstanceUID != lr.SOPInstanceUID and ds.PatientID == lr.PatientID
    np.testing.assert_array_equal(ds.pixel_array[::2, ::2], lr.pixel_array)  # nearest x2: stored values exact


def test_save_radiographd_nifti_and_refusals(tmp_path):
    src = write_nifti(tmp_path / "x.nii.gz", phantom_12bit(), pixel_spacing_mm=0.5)
    img, out = _save_round_trip(tmp_path, src)
    assert out.endswith("x_sr.nii.gz")
    back = LoadRadiograph()(out)
    np.testing.assert_allclose(back.meta["spacing"], [0.25, 0.25])
    np.testing.assert_allclose(back[0, ::2, ::2].numpy(), img[0].numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="LoadRadiograph meta"):
        SaveRadiograph()(torch.zeros(1, 4, 4))
    with pytest.raises(KeyError, match="source_key"):
        SaveRadiographd("pred", source_key="img")({"image": img, "pred": img})


def test_import_stays_light():
    code = (
        "import sys, medgen.transforms as T; "
        "assert not {'pydicom', 'monai', 'nibabel', 'skimage', 'itk'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
