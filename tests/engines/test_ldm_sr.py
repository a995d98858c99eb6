"""LDM-SR training (medgen.engines.ldm_sr): residual scaling, v-prediction, checkpoint round trip (tiny sizes)."""

import pytest
import torch

from medgen.engines.attention_sr import render_hr
from medgen.engines.attention_sr.backends import hr_patches
from medgen.engines.ldm_sr import degrade, train_ldm_sr
from medgen.inferers.region_sr import LatentDiffusionBackend
from medgen.networks.nets.ldm_sr import LDMSuperResolution
from medgen.networks.utils import read_checkpoint

TINY = dict(ae_channels=(8, 8, 8), unet_channels=(8, 16), latent_channels=2, norm_num_groups=4)


def _ae_error(model: LDMSuperResolution, hr: torch.Tensor) -> float:
    lr = degrade(hr, 4)
    with torch.no_grad():
        rec = model.autoencoder.decode(model.autoencoder.encode(model.target(hr, lr))[0])
        out = (rec * model.residual_std + model.upsample(lr)).clamp(0, 1)
    return float((out - hr).abs().mean())


def test_train_ldm_sr_scales_residual_learns_and_round_trips(tmp_path):
    torch.manual_seed(0)
    hr = hr_patches(render_hr([0, 1], 512, hr_noise_scale=0.25), 32, 4, 16, seed=0)  # 128 px x4, 16x dose
    model = LDMSuperResolution(scale=4, prediction_type="v_prediction", **TINY)
    model.residual_std.fill_(float((hr - model.upsample(degrade(hr, 4))).std()))
    before = _ae_error(model, hr)
    model.residual_std.fill_(1.0)
    path = tmp_path / "ldm.pt"
    trained = train_ldm_sr(
        hr, ae_epochs=30, unet_epochs=2, batch_size=8, ae_patch=16, save_path=path, model=model, seed=0
    )
    resid = hr - trained.upsample(degrade(hr, 4))
    assert torch.isclose(trained.residual_std, resid.std(), rtol=1e-4)  # set from the training residual
    assert 0.005 < float(trained.residual_std) < 0.1
    assert _ae_error(trained, hr) < 0.85 * before  # the autoencoder learned the (scaled) residual
    # the checkpoint (medgen.networks.utils format) carries the architecture: loading needs no model_kwargs and
    # reproduces the outputs
    ckpt = read_checkpoint(path)
    assert ckpt["arch"] == "LDMSuperResolution" and ckpt["scale"] == 4 and ckpt["config"]["residual"] is True
    lr = degrade(hr[:3], 4)
    loaded = LatentDiffusionBackend(checkpoint=path, num_inference_steps=3, num_samples=2)
    assert loaded.model.prediction_type == "v_prediction"
    same = LatentDiffusionBackend(model=trained, num_inference_steps=3, num_samples=2)
    assert torch.allclose(loaded(lr, 4), same(lr, 4), atol=1e-6)


def test_ldm_refuses_bad_options():
    with pytest.raises(ValueError, match="prediction_type"):
        LDMSuperResolution(scale=4, prediction_type="sample", **TINY)
    with pytest.raises(ValueError, match="ae_patch"):
        train_ldm_sr(torch.rand(2, 1, 16, 16), ae_patch=32, model=LDMSuperResolution(scale=4, **TINY))
