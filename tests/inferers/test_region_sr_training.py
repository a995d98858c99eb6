"""Training the learned region-SR backends: true-HR reference, random patch pairs, the fast RDN backend, and
posterior-mean averaging of the latent-diffusion backend (small sizes, real computations)."""

import pytest
import torch

from medgen.engines.attention_sr import load_pipeline_config, render_hr
from medgen.engines.attention_sr.backends import build_backend, fit_sr_network
from medgen.engines.ldm_sr import RandomPatchPairs, degrade
from medgen.inferers.region_sr import FAST_SR_NETWORK, LatentDiffusionBackend, NetworkBackend
from medgen.networks.nets.ldm_sr import LDMSuperResolution
from medgen.networks.utils import read_checkpoint

DATA = {"size": 128, "scale": 2, "phantom_seed": 0, "hr_noise_scale": 0.25}


def test_render_hr_uses_hr_noise_scale_same_anatomy_less_noise():
    assert load_pipeline_config()["data"]["hr_noise_scale"] == 0.25  # the documented default (16x dose)
    low = render_hr([3], 256, hr_noise_scale=0.25)
    full = render_hr([3], 256, hr_noise_scale=1.0)
    clean = render_hr([3], 256, hr_noise_scale=0.0)
    assert low.shape == full.shape == clean.shape == (1, 1, 256, 256)
    # same anatomy, a quarter of the quantum noise: the deviation from the noiseless render shrinks ~4x
    err_low, err_full = (low - clean).abs().mean(), (full - clean).abs().mean()
    assert 0 < err_low < 0.4 * err_full
    with pytest.raises(ValueError, match="hr_noise_scale"):
        render_hr([3], 256, hr_noise_scale=-1.0)


def test_random_patch_pairs_reproducible_degraded_and_not_flat():
    hr = torch.zeros(2, 1, 64, 64)
    hr[:, :, 20:50, 10:60] = torch.rand(2, 1, 30, 50)  # textured body, flat background elsewhere
    data = RandomPatchPairs(hr, patch=16, scale=4, length=12, seed=3)
    a, b = data[5], RandomPatchPairs(hr, patch=16, scale=4, length=12, seed=3)[5]
    assert torch.equal(a["hr"], b["hr"]) and a["hr"].shape == (1, 16, 16)
    assert torch.allclose(a["lr"], degrade(a["hr"][None], 4)[0])
    assert not torch.equal(data[5]["hr"], data[6]["hr"])
    assert sum(float(data[i]["hr"].std()) > 0.02 for i in range(12)) == 12  # flat crops are redrawn
    with pytest.raises(ValueError, match="multiple of scale"):
        RandomPatchPairs(hr, patch=18, scale=4, length=1)


def test_fit_sr_network_lowers_the_error_on_held_out_crops():
    import medgen

    torch.manual_seed(0)
    hr = render_hr([0, 1], 256, hr_noise_scale=0.25)
    net = medgen.create_network("rdn", scale=2, num_features=8, growth=8, num_blocks=1, num_layers=2)
    pairs = RandomPatchPairs(hr, 32, 2, 32, seed=9)  # held-out crops (another seed than training)
    x = torch.stack([pairs[i]["lr"] for i in range(32)])
    y = torch.stack([pairs[i]["hr"] for i in range(32)])
    with torch.no_grad():
        before = (net(x) - y).abs().mean()
    fit_sr_network(net, hr, 2, iterations=60, lr=2e-3, seed=0, patch=32, batch_size=8)
    with torch.no_grad():
        after = (net(x) - y).abs().mean()
    assert not net.training and after < 0.9 * before
    with pytest.raises(ValueError, match="iterations"):
        fit_sr_network(net, hr, 2, iterations=0, lr=1e-3, seed=0, patch=32, batch_size=8)


def test_build_backend_trains_the_default_fast_rdn_and_caches_it(tmp_path):
    spec = {"name": "network", "kwargs": {}, "train": {"n_images": 1, "iterations": 2, "patch": 32}}
    backend = build_backend(spec, DATA, DATA, tmp_path, [0, 1])
    assert isinstance(backend, NetworkBackend)
    assert type(backend.net).__name__ == "RDN" and FAST_SR_NETWORK["network"] == "rdn"
    n_params = sum(p.numel() for p in backend.net.parameters())
    assert n_params < 100_000  # the fast (student-size) RDN, not the 2.5M default `rdn`
    ckpts = list(tmp_path.glob("network_*.pt"))
    assert len(ckpts) == 1
    assert read_checkpoint(ckpts[0])["scale"] == 2  # the medgen checkpoint format, not a bare state_dict
    again = build_backend(spec, DATA, DATA, tmp_path, [0, 1])  # loads the cached checkpoint
    lr = torch.rand(2, 1, 8, 8)
    assert torch.equal(backend(lr, 2), again(lr, 2))
    stale = {**spec, "train": {**spec["train"], "epochs": 30}}  # the former epoch-based option
    with pytest.raises(ValueError, match="iterations"):
        build_backend(stale, DATA, DATA, tmp_path, [0, 1])


def test_latent_diffusion_sample_average_has_lower_variance_than_one_sample():
    torch.manual_seed(0)
    kw = dict(ae_channels=(8, 8, 8), unet_channels=(8, 16), latent_channels=2, norm_num_groups=4)
    model = LDMSuperResolution(scale=4, **kw)
    lr = torch.rand(3, 1, 6, 6)

    def draws(n_samples):
        return torch.stack(
            [
                LatentDiffusionBackend(model=model, num_inference_steps=3, seed=s, num_samples=n_samples)(
                    lr, 4
                )
                for s in range(6)
            ]
        )

    one, avg = draws(1), draws(4)
    assert avg.shape == (6, 3, 1, 24, 24) and avg.min() >= 0 and avg.max() <= 1
    # the 4-sample average varies less across seeds than a single sample (Monte-Carlo posterior mean)
    assert avg.var(0).mean() < 0.6 * one.var(0).mean()
    with pytest.raises(ValueError, match="num_samples"):
        LatentDiffusionBackend(model=model, num_samples=0)
