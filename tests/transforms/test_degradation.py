"""PairedDegradation and the downsample/upsample baselines: shapes, ranges, anti-aliasing, seeds, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from monai.data import MetaTensor
from PIL import Image

from medgen.transforms.degradation import (
    DOWNSAMPLE_METHODS,
    UPSAMPLE_METHODS,
    PairedDegradation,
    PairedDegradationd,
    downsample,
    upsample,
)

FAST = settings(max_examples=25, deadline=None)


@st.composite
def hr_images(draw):
    scale = draw(st.sampled_from([2, 4, 8]))
    c = draw(st.integers(1, 2))
    h, w = scale * draw(st.integers(1, 6)), scale * draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    img = torch.from_numpy(np.random.default_rng(seed).random((c, h, w), dtype=np.float32))
    return img, scale


@FAST
@given(hr_images(), st.sampled_from(DOWNSAMPLE_METHODS), st.integers(0, 1000))
def test_pair_shape_range_and_seed(data, method, seed):
    hr, scale = data
    t = PairedDegradation(
        scale=scale, method=method, blur_sigma=(0.3, 1.2), poisson_peak=(50, 500), gaussian_std=0.02
    )
    lr1, hr1 = t.set_random_state(seed)(hr)
    lr2, _ = t.set_random_state(seed)(hr)
    assert lr1.shape == (hr.shape[0], hr.shape[1] // scale, hr.shape[2] // scale)
    assert torch.equal(hr1, hr)
    assert 0 <= float(lr1.min()) and float(lr1.max()) <= 1
    assert torch.equal(lr1, lr2)


@FAST
@given(hr_images(), st.sampled_from(UPSAMPLE_METHODS))
def test_upsample_shape_and_range(data, method):
    lr, scale = data
    out = upsample(lr, scale, method)
    assert out.shape == (lr.shape[0], lr.shape[1] * scale, lr.shape[2] * scale)
    assert 0 <= float(out.min()) and float(out.max()) <= 1


def test_different_seeds_give_different_noise():
    hr = torch.full((1, 32, 32), 0.5)
    t = PairedDegradation(scale=2, gaussian_std=0.05)
    assert not torch.equal(t.set_random_state(1)(hr)[0], t.set_random_state(2)(hr)[0])


@pytest.mark.parametrize("method", DOWNSAMPLE_METHODS)
def test_constant_image_stays_constant(method):
    lr = downsample(torch.full((1, 32, 24), 0.3), 4, method)
    assert torch.allclose(lr, torch.full_like(lr, 0.3), atol=1e-5)


@pytest.mark.parametrize("method", DOWNSAMPLE_METHODS)
def test_downsampling_is_anti_aliased(method):
    # a one-pixel checkerboard is above the LR Nyquist limit: anti-aliased resizing averages it to grey,
    # plain point sampling would return all 0 or all 1
    y, x = np.mgrid[:64, :64]
    board = torch.from_numpy(((x + y) % 2).astype(np.float32))[None]
    lr = downsample(board, 2, method)[0, 4:-4, 4:-4]
    assert abs(float(lr.mean()) - 0.5) < 0.02 and float(lr.std()) < 0.05


def test_bicubic_matches_pil_and_area_is_block_mean():
    x = np.random.default_rng(0).random((64, 48), dtype=np.float32)
    ours = downsample(x[None], 4, "bicubic")[0]
    pil = np.asarray(Image.fromarray(x, mode="F").resize((12, 16), Image.BICUBIC))
    np.testing.assert_allclose(ours, np.clip(pil, 0, 1), atol=1e-5)
    area = downsample(x[None], 4, "area")[0]
    np.testing.assert_allclose(area, x.reshape(16, 4, 12, 4).mean(axis=(1, 3)), atol=1e-6)
    assert isinstance(ours, np.ndarray) and ours.dtype == np.float32


def test_nearest_upsample_replicates_pixels():
    lr = torch.rand(1, 5, 7)
    up = upsample(lr, 3, "nearest")
    assert torch.equal(up, lr.repeat_interleave(3, dim=1).repeat_interleave(3, dim=2))


def test_noise_statistics():
    hr = torch.full((1, 256, 256), 0.5)
    lr, _ = PairedDegradation(scale=2, method="area", gaussian_std=0.05).set_random_state(0)(hr)
    assert abs(float(lr.std()) - 0.05) < 0.005 and abs(float(lr.mean()) - 0.5) < 0.005
    lr, _ = PairedDegradation(scale=2, method="area", poisson_peak=100).set_random_state(0)(hr)
    assert abs(float(lr.var()) - 0.5 / 100) < 0.0008  # Poisson(50)/100 has variance 50/100**2


def test_blur_reduces_high_frequencies():
    hr = torch.from_numpy(np.random.default_rng(0).random((1, 64, 64), dtype=np.float32))
    sharp, _ = PairedDegradation(scale=2)(hr)
    soft, _ = PairedDegradation(scale=2, blur_sigma=2.0)(hr)
    assert float(soft.std()) < 0.7 * float(sharp.std())


def test_not_divisible_raises_or_crops_when_asked():
    hr = torch.rand(1, 30, 33)
    with pytest.raises(ValueError, match="30x33 is not divisible by scale 4.*28x32.*crop_to_multiple=True"):
        PairedDegradation(scale=4)(hr)
    lr, cropped = PairedDegradation(scale=4, crop_to_multiple=True)(hr)
    assert cropped.shape == (1, 28, 32) and lr.shape == (1, 7, 8)
    assert torch.equal(cropped, hr[:, :28, :32])
    with pytest.raises(ValueError, match="not divisible"):
        downsample(hr, 4)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="in \\[0, 1\\].*ScaleIntensity"):
        PairedDegradation(scale=2)(torch.full((1, 8, 8), 2.0))
    with pytest.raises(ValueError, match="did you mean"):
        PairedDegradation(method="bicubik")
    with pytest.raises(ValueError, match="low <= high"):
        PairedDegradation(blur_sigma=(2.0, 1.0))
    with pytest.raises(ValueError, match="positive integer"):
        downsample(torch.rand(1, 8, 8), 2.5)
    with pytest.raises(ValueError, match="channel-first"):
        PairedDegradation(scale=2)(torch.rand(8, 8))


def test_metatensor_spacing_follows_scale():
    hr = MetaTensor(
        torch.rand(1, 16, 16), affine=torch.diag(torch.tensor([0.2, 0.3, 1.0, 1.0], dtype=torch.float64))
    )
    lr, out_hr = PairedDegradation(scale=4)(hr)
    assert isinstance(lr, MetaTensor) and out_hr is hr
    np.testing.assert_allclose(lr.pixdim[:2].numpy(), [0.8, 1.2])
    np.testing.assert_allclose(lr.affine[:2, 3].numpy(), [0.3, 0.45])  # centre of the first 4x4 block
    assert lr.meta["degradation"]["scale"] == 4


def test_dictionary_version():
    t = PairedDegradationd("image", scale=2, gaussian_std=0.05)
    data = {"image": torch.rand(1, 16, 16), "id": 7}
    out1 = t.set_random_state(3)(data)
    out2 = t.set_random_state(3)(data)
    assert out1["lr"].shape == (1, 8, 8) and torch.equal(out1["hr"], data["image"]) and out1["id"] == 7
    assert torch.equal(out1["lr"], out2["lr"])
    assert PairedDegradationd("image", allow_missing_keys=True)({"x": 1}) == {"x": 1}
    with pytest.raises(ValueError, match="reads one HR image"):
        PairedDegradationd(["a", "b"])
