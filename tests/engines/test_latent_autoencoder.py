"""Latent autoencoder of the text-to-X-ray LDM: training lowers the loss, the scale factor is fitted from the data
and round-trips through the one checkpoint format, reconstruction quality is measured, bad input is named."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medgen.engines.autoencoder import (
    autoencoder_loss,
    fit_scale_factor,
    reconstruction_quality,
    train_latent_autoencoder,
)
from medgen.networks.nets.latent_autoencoder import cxr_ldm_autoencoder
from medgen.networks.utils import load_checkpoint, read_checkpoint

TINY = dict(channels=(8, 16), latent_channels=2, num_res_blocks=1, norm_num_groups=4)


@pytest.fixture(scope="module")
def phantom_images() -> torch.Tensor:
    """Eight real phantom renders at 128 px, downsampled to 32 px (area), in [0, 1]."""
    from medgen.data.phantom import render_phantom

    imgs = np.stack([render_phantom(i, 128, seed=0).image for i in range(8)])
    return F.avg_pool2d(torch.from_numpy(imgs)[:, None], 4).clamp(0, 1)


def test_default_is_the_seed_systems_autoencoder():
    ae = cxr_ldm_autoencoder()
    assert ae.latent_channels == 8 and ae.downsample == 8
    assert ae.latent_shape(256) == (8, 32, 32)


def test_training_lowers_the_loss_and_fits_the_scale_factor(phantom_images, tmp_path):
    torch.manual_seed(0)
    ae = cxr_ldm_autoencoder(**TINY)
    x = ae.to_model_range(phantom_images)
    loss = autoencoder_loss(1e-6)
    with torch.no_grad():
        before = float(loss(ae(x), x))
    ae = train_latent_autoencoder(
        ae, phantom_images, epochs=15, batch_size=4, lr=3e-3, save_path=tmp_path / "ae.pt", progress=False
    )
    with torch.no_grad():
        after = float(loss(ae(x), x))
    assert after < 0.6 * before, (before, after)
    # the fitted factor makes the scaled latents unit-variance on the training images
    with torch.no_grad():
        z = ae.encode_images(phantom_images)
    assert float(z.std()) == pytest.approx(1.0, rel=1e-3)
    assert float(ae.scale_factor) != 1.0
    # and travels with the weights
    ckpt = read_checkpoint(tmp_path / "ae.pt")
    assert ckpt["arch"] == "cxr_ldm_autoencoder"
    assert float(ckpt["state_dict"]["scale_factor"]) == pytest.approx(float(ae.scale_factor))
    fresh = load_checkpoint(tmp_path / "ae.pt", cxr_ldm_autoencoder(**TINY)).eval()
    assert float(fresh.scale_factor) == pytest.approx(float(ae.scale_factor))
    with torch.no_grad():
        torch.testing.assert_close(fresh.decode_latents(z), ae.decode_latents(z))
    # a freshly initialised model with factor 1 decodes the same latents differently
    assert not torch.allclose(cxr_ldm_autoencoder(**TINY).eval().decode_latents(z), ae.decode_latents(z))
    q = reconstruction_quality(ae, phantom_images)
    assert q["n_images"] == 8 and 10.0 < q["psnr"] < 60.0 and 0.0 < q["ssim"] <= 1.0


def test_scale_factor_is_one_over_the_latent_std():
    lat = torch.randn(40, 2, 4, 4, generator=torch.Generator().manual_seed(1)) * 3.0
    assert fit_scale_factor(lambda b: b, lat, batch_size=7) == pytest.approx(1.0 / float(lat.std()), rel=1e-6)
    with pytest.raises(ValueError, match="constant"):
        fit_scale_factor(lambda b: b, torch.zeros(4, 2, 4, 4))


def test_bad_input_is_named(phantom_images):
    ae = cxr_ldm_autoencoder(**TINY)
    with pytest.raises(ValueError, match=r"not divisible by the x2 downsampling"):
        ae.encode_images(torch.rand(1, 1, 33, 32))
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        ae.encode_images(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        train_latent_autoencoder(ae, phantom_images * 2 - 1, epochs=1, progress=False)
    with pytest.raises(ValueError, match="patch=5"):
        train_latent_autoencoder(ae, phantom_images, epochs=1, patch=5, progress=False)
    with pytest.raises(ValueError, match="norm_num_groups=4 must divide"):
        cxr_ldm_autoencoder(channels=(6, 16), norm_num_groups=4)
    with pytest.raises(TypeError, match="unknown argument"):
        cxr_ldm_autoencoder(latent=3)


def test_perceptual_term_is_added_on_images_in_unit_range():
    from medgen.engines.autoencoder import autoencoder_loss

    seen = []

    def perceptual(a, b):  # records what it is given: images mapped back to [0, 1]
        seen.append((float(a.min()), float(a.max()), float(b.min()), float(b.max())))
        return (a - b).abs().mean() * 0 + 2.0

    torch.manual_seed(0)
    target = torch.rand(2, 1, 8, 8) * 2 - 1
    recon = torch.rand(2, 1, 8, 8) * 2 - 1
    mu, sigma = torch.zeros(2, 2, 4, 4), torch.ones(2, 2, 4, 4)
    plain = autoencoder_loss(1e-6)((recon, mu, sigma), target)
    with_term = autoencoder_loss(1e-6, perceptual, 0.25)((recon, mu, sigma), target)
    assert float(with_term - plain) == pytest.approx(0.5)
    lo_a, hi_a, lo_b, hi_b = seen[0]
    assert 0 <= lo_a and hi_a <= 1 and 0 <= lo_b and hi_b <= 1


def test_adversarial_option_trains_a_patch_discriminator_with_the_autoencoder():
    import medgen.engines.autoencoder as engine
    from medgen.engines.sr_gan import SRGANTrainer

    made = {}
    original = engine._adversarial_trainer

    def spy(*args, **kwargs):
        trainer = original(*args, **kwargs)
        made["trainer"] = trainer
        made["d_before"] = [p.detach().clone() for p in trainer.d_network.parameters()]
        return trainer

    engine._adversarial_trainer = spy
    try:
        torch.manual_seed(0)
        x = torch.rand(8, 1, 32, 32)
        ae = cxr_ldm_autoencoder(channels=(8, 16), latent_channels=2, num_res_blocks=1, norm_num_groups=8)
        before = [p.detach().clone() for p in ae.parameters()]
        ae = engine.train_latent_autoencoder(
            ae, x, epochs=1, batch_size=4, progress=False, adversarial_weight=0.1,
            discriminator_kwargs={"num_layers_d": 2},
        )  # fmt: skip
    finally:
        engine._adversarial_trainer = original
    trainer = made["trainer"]
    assert isinstance(trainer, SRGANTrainer)
    assert trainer.state.iteration == 2 and "d_loss" in trainer.state.output
    assert any(not torch.equal(a, b) for a, b in zip(made["d_before"], trainer.d_network.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(before, ae.parameters()))
    assert float(ae.scale_factor) > 0 and not ae.training
