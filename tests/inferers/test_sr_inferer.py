import numpy as np
import pytest
import torch

from medgen.engines.sr import InterpolationSR
from medgen.inferers.sr import SuperResolutionInferer
from medgen.registry import create_network
from medgen.transforms.degradation import upsample
from medgen.transforms.io import LoadRadiograph, RadiographLoadError, detect_format
from medgen.transforms.io.writers import write_dicom


def _net(scale=2):
    """A small untrained RDN whose residual branch is made strong, so tile seams would show."""
    torch.manual_seed(0)
    net = create_network("rdn_half", scale=scale, num_blocks=2, num_layers=2)
    with torch.no_grad():
        for m in net.tail.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.mul_(10.0)
    return net.eval()


def _smooth(size, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.interpolate(torch.rand(1, 1, size // 16, size // 16, generator=g), size=(size, size),
                                           mode="bicubic").clamp(0, 1)  # fmt: skip


def test_tiled_equals_whole_on_512():
    net = _net()
    x = _smooth(512)
    whole = SuperResolutionInferer(net).upscale(x)
    tiled = SuperResolutionInferer(net, tile_size=128, overlap=0.25, halo=12).upscale(x)
    assert tiled.shape == whole.shape == (1, 1, 1024, 1024)
    assert (tiled - whole).abs().max() < 1e-3
    assert (whole - torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic")).abs().mean() > 1e-3


def test_large_image_needs_tiling_never_cropped():
    net = _net()
    with pytest.raises(ValueError, match="set tile_size"):
        SuperResolutionInferer(net, max_whole_pixels=64 * 64).upscale(torch.rand(1, 1, 80, 80))
    out = SuperResolutionInferer(net, tile_size=32, overlap=0.5).upscale(
        torch.rand(1, 1, 50, 70)
    )  # not a tile multiple
    assert out.shape == (1, 1, 100, 140)
    with pytest.raises(ValueError, match="overlap"):
        SuperResolutionInferer(net, tile_size=32, overlap=0.1, halo=8)


def _bicubic_x2():
    return SuperResolutionInferer(InterpolationSR(2, "bicubic"))


def _grey(size=64, lo=0.1, hi=0.9):
    """A smooth image in [lo, hi] (mean ~0.5: an 8-bit file scaled by 65535 would come out ~0.002)."""
    return lo + (hi - lo) * _smooth(size)[0, 0].numpy().astype(np.float64)


def _open(path):
    from PIL import Image

    with Image.open(path) as im:
        return im.format, im.mode, im.size, np.asarray(im).astype(np.float64)


@pytest.mark.parametrize(
    "name, mode, peak, out_mode",
    [("lr8.png", "L", 255, "L"), ("lr16.png", "I;16", 65535, "I;16"), ("rgb.png", "RGB", 255, "L")],
)
def test_png_round_trip_keeps_bit_depth_and_brightness(tmp_path, name, mode, peak, out_mode):
    from PIL import Image

    arr = np.round(_grey() * peak)
    if mode == "L":
        Image.fromarray(arr.astype(np.uint8)).save(tmp_path / name)
    elif mode == "RGB":  # grey stored as RGB: three equal channels, written back as 8-bit grey
        Image.fromarray(arr.astype(np.uint8)).convert("RGB").save(tmp_path / name)
    else:
        Image.fromarray(arr.astype(np.uint16)).save(tmp_path / name)
    out = _bicubic_x2()(tmp_path / name, tmp_path / f"sr_{name}")
    fmt, out_mode_read, size, sr = _open(out)
    assert fmt == "PNG" and out_mode_read == out_mode and size == (128, 128)
    assert abs(sr.mean() - arr.mean()) < 0.01 * peak  # same brightness: an 8-bit PNG must not come out dark
    bicubic = torch.nn.functional.interpolate(torch.tensor(arr)[None, None], scale_factor=2, mode="bicubic")
    assert np.abs(sr - bicubic[0, 0].numpy()).mean() < 0.01 * peak  # same content, upscaled


def test_png_spacing_divided_by_scale(tmp_path):
    from PIL import Image

    Image.fromarray(np.round(_grey() * 255).astype(np.uint8)).save(tmp_path / "lr.png", dpi=(127, 127))
    out = _bicubic_x2()(tmp_path / "lr.png", tmp_path / "sr.png")
    lr, sr = LoadRadiograph()(tmp_path / "lr.png"), LoadRadiograph()(out)
    np.testing.assert_allclose(sr.meta["spacing"], lr.meta["spacing"] / 2, rtol=0.01)


def test_jpeg_round_trip_is_8bit_jpeg(tmp_path):
    from PIL import Image

    arr = np.round(_grey() * 255)
    Image.fromarray(arr.astype(np.uint8)).save(tmp_path / "lr.jpg", quality=95)
    _, _, _, stored = _open(tmp_path / "lr.jpg")
    out = _bicubic_x2()(tmp_path / "lr.jpg", tmp_path / "sr.jpg")
    fmt, mode, size, sr = _open(out)
    assert fmt == "JPEG" and mode == "L" and size == (128, 128)
    assert abs(sr.mean() - stored.mean()) < 1.0


def test_nifti_round_trip_scales_affine(tmp_path):
    import nibabel as nib

    data = (_smooth(64)[0, 0].numpy() * 4000).astype(np.int16)
    affine = np.diag([0.5, 0.5, 1.0, 1.0])
    img = nib.Nifti1Image(data, affine)
    img.header["cal_min"], img.header["cal_max"] = 0, 4095  # int16 needs the range that maps to [0, 1]
    nib.save(img, str(tmp_path / "lr.nii.gz"))
    assert detect_format(tmp_path / "lr.nii.gz") == "nifti"
    _bicubic_x2()(tmp_path / "lr.nii.gz", tmp_path / "sr.nii.gz")
    out = nib.load(str(tmp_path / "sr.nii.gz"))
    assert out.shape == (128, 128) and out.get_data_dtype() == np.int16
    assert np.allclose(np.diag(out.affine)[:2], [0.25, 0.25])
    # HR voxel 0 centre lies a quarter LR voxel before LR voxel 0 centre
    assert np.allclose(out.affine[:2, 3], [-0.125, -0.125])
    sr = np.asarray(out.dataobj)
    assert sr.min() >= data.min() - 40 and sr.max() <= data.max() + 40  # bicubic overshoot only
    assert abs(sr.mean() - data.mean()) < 20


def test_dicom_round_trip_keeps_tags_and_bit_depth(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    src = get_testdata_file("CT_small.dcm", download=False)  # int16, RescaleIntercept -1024, no window
    ds = pydicom.dcmread(src)
    out_path = _bicubic_x2()(src, tmp_path / "sr.dcm")
    out = pydicom.dcmread(out_path)
    assert (out.Rows, out.Columns) == (ds.Rows * 2, ds.Columns * 2)
    assert out.PatientName == ds.PatientName and out.PatientID == ds.PatientID
    assert out.StudyInstanceUID == ds.StudyInstanceUID
    assert out.SOPInstanceUID != ds.SOPInstanceUID and out.SeriesInstanceUID != ds.SeriesInstanceUID
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert [float(v) for v in out.PixelSpacing] == pytest.approx([float(v) / 2 for v in ds.PixelSpacing])
    assert out.ImageType[0] == "DERIVED"
    for tag in (
        "BitsAllocated",
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
        "RescaleSlope",
        "RescaleIntercept",
        "PhotometricInterpretation",
    ):
        assert out[tag].value == ds[tag].value
    sr, lr = out.pixel_array, ds.pixel_array
    assert sr.dtype == lr.dtype and sr.shape == (ds.Rows * 2, ds.Columns * 2)
    # stored values are the input's stored values upscaled: same range and level, nothing rescaled
    expected = upsample(torch.tensor(lr, dtype=torch.float32)[None, None] / 65535 + 0.5, 2)[0, 0].numpy()
    assert np.abs(sr.astype(np.float64) - ((expected - 0.5) * 65535)).max() <= 2
    assert abs(float(sr.mean()) - float(lr.mean())) < 2


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_dicom_monochrome_round_trip(tmp_path, photometric):
    pydicom = pytest.importorskip("pydicom")
    a = np.round(_grey() * 4095) / 4095
    src = write_dicom(tmp_path / "lr.dcm", a, pixel_spacing_mm=0.4, photometric=photometric)
    out = pydicom.dcmread(_bicubic_x2()(src, tmp_path / "sr.dcm"))
    lr = pydicom.dcmread(src).pixel_array
    assert (
        out.PhotometricInterpretation == photometric
        and out.BitsStored == 12
        and out.pixel_array.dtype == lr.dtype
    )
    assert abs(float(out.pixel_array.mean()) - float(lr.mean())) < 2  # inverted back: stored levels kept
    loaded_lr, loaded_sr = LoadRadiograph()(src), LoadRadiograph()(tmp_path / "sr.dcm")
    assert abs(float(loaded_sr.mean()) - float(loaded_lr.mean())) < 1e-3  # bright = dense in both
    assert [float(v) for v in out.PixelSpacing] == pytest.approx([0.2, 0.2])


@pytest.mark.parametrize("width", [8190, 2000])
def test_dicom_rescale_and_window_round_trip(tmp_path, width):
    """A x1 network returns the stored values (inside the window) and the displayed values (everywhere)."""
    pydicom = pytest.importorskip("pydicom")
    a = np.round(_grey() * 4095) / 4095
    tags = {"WindowCenter": 3995, "WindowWidth": width, "RescaleSlope": 2, "RescaleIntercept": -100}
    src = write_dicom(tmp_path / "lr.dcm", a, tags=tags)
    img = LoadRadiograph()(src)
    assert img.meta["voi"] == "window"
    out_path = SuperResolutionInferer(InterpolationSR(1, "bicubic"), scale=1)(src, tmp_path / "x.dcm")
    out, lr = pydicom.dcmread(out_path), pydicom.dcmread(src)
    assert out.WindowWidth == lr.WindowWidth and out.RescaleSlope == lr.RescaleSlope
    np.testing.assert_allclose(LoadRadiograph()(out_path).numpy(), img.numpy(), atol=1e-3)
    modality = lr.pixel_array * 2.0 - 100
    inside = np.abs(modality - 3995) < width / 2 - 2
    assert inside.mean() > 0.3
    np.testing.assert_allclose(
        out.pixel_array[inside].astype(float), lr.pixel_array[inside].astype(float), atol=1
    )


def test_unsupported_format(tmp_path):
    (tmp_path / "x.txt").write_bytes(b"not an image")
    with pytest.raises(RadiographLoadError, match="unknown image format"):
        detect_format(tmp_path / "x.txt")
    with pytest.raises(RadiographLoadError, match="x.txt"):
        _bicubic_x2()(tmp_path / "x.txt", tmp_path / "y.txt")
