"""Region SR backends (shapes, errors) and the feathered blend (no seam)."""

import importlib.util

import pytest
import torch

import medgen
from medgen.engines.ldm_sr import degrade
from medgen.inferers.attention_sr import AttentionSRPipeline, blend_region, feather_weights
from medgen.inferers.region_sr import (
    BicubicBackend,
    LatentDiffusionBackend,
    NetworkBackend,
    create_sr_backend,
)
from medgen.networks.nets.ldm_sr import LDMSuperResolution
from medgen.networks.nets.vit_classifier import ViTClassifier
from medgen.networks.utils import save_checkpoint


def test_bicubic_backend_shape_range_and_consistency():
    patches = torch.rand(5, 1, 8, 12)
    out = create_sr_backend("bicubic")(patches, 4)
    assert out.shape == (5, 1, 32, 48)
    assert out.min() >= 0 and out.max() <= 1
    # a constant patch stays constant
    assert torch.allclose(BicubicBackend()(torch.full((1, 1, 8, 8), 0.3), 2), torch.full((1, 1, 16, 16), 0.3))
    with pytest.raises(ValueError, match="N, 1, h, w"):
        BicubicBackend()(torch.rand(1, 3, 8, 8), 4)


def test_network_backend_uses_registered_sr_network(tmp_path):
    net = medgen.create_network("srcnn", scale=2)
    torch.save(net.state_dict(), tmp_path / "srcnn.pt")
    backend = NetworkBackend("srcnn", checkpoint=tmp_path / "srcnn.pt", scale=2)
    assert backend(torch.rand(3, 1, 10, 10), 2).shape == (3, 1, 20, 20)
    with pytest.raises(ValueError, match="scale"):
        backend(torch.rand(1, 1, 10, 10), 4)
    with pytest.raises(ValueError, match="checkpoint"):
        NetworkBackend("srcnn", scale=2)


def test_latent_diffusion_backend_shape_and_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = LDMSuperResolution(
        scale=4, ae_channels=(8, 8, 8), unet_channels=(8, 16), latent_channels=2, norm_num_groups=4
    )
    path = tmp_path / "ldm.pt"
    save_checkpoint(path, model)  # the one medgen checkpoint format (arch, scale, config)
    kw = dict(ae_channels=(8, 8, 8), unet_channels=(8, 16), latent_channels=2, norm_num_groups=4)
    backend = LatentDiffusionBackend(checkpoint=path, num_inference_steps=3, model_kwargs=kw)
    lr = torch.rand(4, 1, 8, 8)
    out = backend(lr, 4)
    assert out.shape == (4, 1, 32, 32) and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, backend(lr, 4))  # seeded sampling is reproducible
    with pytest.raises(ValueError, match="x4"):
        backend(lr, 2)


def test_degrade_refuses_indivisible_size():
    with pytest.raises(ValueError, match="divisible"):
        degrade(torch.rand(1, 1, 10, 10), 4)


@pytest.mark.skipif(importlib.util.find_spec("diffusers") is None, reason="diffusers not installed")
def test_diffusers_backend_refuses_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        create_sr_backend("diffusers", model_dir=tmp_path)


def _max_abs_grad_x(img):
    return (img[..., :, 1:] - img[..., :, :-1]).abs()


def test_feathered_blend_has_no_seam_and_hard_paste_does():
    h = w = 48
    base = torch.linspace(0, 0.5, w).repeat(h, 1)[None]  # smooth background
    box = (12, 12, 36, 36)
    patch = base[:, 12:36, 12:36] + 0.2  # region brighter than its surroundings: a mismatch to hide
    for feather, expect_seamless in ((6.0, True), (0.0, False)):
        out = blend_region(base, patch, box, feather)
        g = _max_abs_grad_x(out)[0, 12:36]  # rows inside the box; g[:, j] is between columns j and j+1
        border = torch.maximum(g[:, 11], g[:, 35])  # across the left and right box edges
        inside = g[:, 12:35].amax()
        assert (border.max() <= inside + 1e-6) == expect_seamless
    w_ = feather_weights(24, 24, 6.0)
    assert w_[12, 12] == 1 and w_[0, 0] < 0.01 and (w_ >= 0).all()


def test_pipeline_enhances_selected_regions_only():
    torch.manual_seed(0)
    clf = ViTClassifier(("a", "b"), img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2)
    images = torch.rand(2, 1, 32, 32)
    pipe = AttentionSRPipeline(
        clf, BicubicBackend(), scale=2, k=2, percentile=90, min_size=8, max_size=8, feather=2
    )
    out = pipe(images, return_scaled=True)
    assert out.images.shape == images.shape and out.scaled_images.shape == (2, 1, 64, 64)
    assert out.logits.shape == (2, 2) and out.attention.shape == (2, 32, 32)
    for b, boxes in enumerate(out.boxes):
        assert 1 <= boxes.shape[0] <= 2
        outside = torch.ones(32, 32, dtype=torch.bool)
        for x0, y0, x1, y1 in boxes.tolist():
            outside[y0:y1, x0:x1] = False
        assert torch.equal(out.images[b, 0][outside], images[b, 0][outside])
