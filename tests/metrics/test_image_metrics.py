import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from medgen.metrics.image import ShavedPSNRMetric, psnr, ssim, summarize
from medgen.registry import get


def test_registered():
    assert get("metric", "psnr") is ShavedPSNRMetric
    assert get("metric", "ssim").__name__ == "ShavedSSIMMetric"


def test_identical_images_are_inf_and_one():
    x = torch.rand(3, 1, 32, 32)
    assert torch.isinf(psnr(x, x)).all()
    assert torch.allclose(ssim(x, x), torch.ones(3), atol=1e-6)


def test_psnr_known_value_uses_peak_one_not_image_max():
    target = torch.full((1, 1, 20, 20), 0.25)  # image max 0.25: a max-based peak would read 12 dB lower
    pred = target + 0.01
    assert math.isclose(psnr(pred, target, shave=0).item(), 40.0, abs_tol=1e-3)


def test_shave_respected():
    target = torch.zeros(1, 1, 16, 16)
    pred = target.clone()
    pred[..., :4, :] = 1.0  # error only in the top 4 rows
    assert torch.isinf(psnr(pred, target, shave=4)).all()
    assert math.isclose(psnr(pred, target, shave=0).item(), 10 * math.log10(16 * 16 / (4 * 16)), abs_tol=1e-4)
    with pytest.raises(ValueError, match="too small"):
        psnr(pred, target, shave=8)


def test_per_image_values_and_ssim_matches_skimage():
    rng = np.random.default_rng(0)
    target = torch.tensor(rng.random((2, 1, 48, 48)), dtype=torch.float32)
    pred = (target + 0.05 * torch.tensor(rng.standard_normal((2, 1, 48, 48)), dtype=torch.float32)).clamp(
        0, 1
    )
    pred[1] = target[1] * 0.5
    values = ssim(pred, target, shave=4)
    assert values.shape == (2,) and values[0] != values[1]
    for i in range(2):
        ref = structural_similarity(
            pred[i, 0, 4:-4, 4:-4].numpy(),
            target[i, 0, 4:-4, 4:-4].numpy(),
            data_range=1.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        assert abs(values[i].item() - ref) < 1e-3
    p = psnr(pred, target, shave=4)
    mse = ((pred - target)[..., 4:-4, 4:-4] ** 2).mean(dim=(1, 2, 3))
    assert torch.allclose(p, -10 * torch.log10(mse), atol=1e-3)


def test_out_of_range_target_is_refused():
    x = torch.rand(1, 1, 16, 16) * 255
    with pytest.raises(ValueError, match="divide 8-bit images by 255"):
        psnr(x, x)


def test_prediction_clipped_to_range():
    target = torch.ones(1, 1, 16, 16)
    assert torch.isinf(
        psnr(target + 0.5, target, shave=0)
    ).all()  # overshoot above 1 is clipped, as when saved


def test_summarize():
    s = summarize([30.0, 32.0, 34.0])
    assert s == {"mean": 32.0, "std": 2.0, "n": 3}
