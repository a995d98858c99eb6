import numpy as np
import pytest
import torch

from medgen.engines.sr import InterpolationSR
from medgen.inferers.sr import SuperResolutionInferer, detect_format
from medgen.registry import create_network
from medgen.transforms.degradation import upsample


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


def test_png_round_trip_keeps_bit_depth(tmp_path):
    from PIL import Image

    arr = (_smooth(64)[0, 0].numpy() * 65535).astype(np.uint16)
    Image.fromarray(arr).save(tmp_path / "lr.png")
    out = SuperResolutionInferer(InterpolationSR(2, "bicubic"))(tmp_path / "lr.png", tmp_path / "sr.png")
    with Image.open(out) as im:
        assert im.mode.startswith("I;16") and im.size == (128, 128)
        sr = np.asarray(im).astype(np.float64) / 65535
    bicubic = torch.nn.functional.interpolate(
        torch.tensor(arr / 65535.0)[None, None], scale_factor=2, mode="bicubic"
    )
    assert np.abs(sr - bicubic[0, 0].numpy()).mean() < 0.1  # same image content, upscaled


def test_nifti_round_trip_scales_affine(tmp_path):
    import nibabel as nib

    data = (_smooth(64)[0, 0].numpy() * 4000).astype(np.int16)
    affine = np.diag([0.5, 0.5, 1.0, 1.0])
    nib.save(nib.Nifti1Image(data, affine), str(tmp_path / "lr.nii.gz"))
    assert detect_format(tmp_path / "lr.nii.gz") == "nifti"
    SuperResolutionInferer(_net())(tmp_path / "lr.nii.gz", tmp_path / "sr.nii.gz")
    out = nib.load(str(tmp_path / "sr.nii.gz"))
    assert out.shape == (128, 128) and out.get_data_dtype() == np.int16
    assert np.allclose(np.diag(out.affine)[:2], [0.25, 0.25])
    # HR voxel 0 centre lies a quarter LR voxel before LR voxel 0 centre
    assert np.allclose(out.affine[:2, 3], [-0.125, -0.125])
    assert out.get_fdata().min() >= data.min() and out.get_fdata().max() <= data.max()


def test_dicom_round_trip_keeps_tags_and_bit_depth(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    src = get_testdata_file("CT_small.dcm", download=False)
    ds = pydicom.dcmread(src)
    out_path = SuperResolutionInferer(InterpolationSR(2, "bicubic"))(src, tmp_path / "sr.dcm")
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
    ):
        assert out[tag].value == ds[tag].value
    sr, lr = out.pixel_array, ds.pixel_array
    assert sr.dtype == lr.dtype and sr.shape == (ds.Rows * 2, ds.Columns * 2)
    # stored values are the input's stored values upscaled: same range and level, nothing rescaled
    expected = upsample(torch.tensor(lr, dtype=torch.float32)[None, None] / 65535 + 0.5, 2)[0, 0].numpy()
    assert np.abs(sr.astype(np.float64) - ((expected - 0.5) * 65535)).max() <= 2
    assert abs(float(np.median(sr)) - float(np.median(lr))) < 20


def test_unsupported_format(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="unsupported image format"):
        detect_format(tmp_path / "x.jpg")
