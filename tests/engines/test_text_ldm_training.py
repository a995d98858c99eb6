"""Text-LDM diffusion training: the null-prompt dropout rate, the null conditioning in training equals the
sampler's null_states, training lowers the loss, EMA weights, settings saved with the checkpoint, bad input."""

from __future__ import annotations

import pytest
import torch

from medgen.engines.text_ldm import NullPromptDropout, train_text_diffusion
from medgen.networks.nets.text_ldm import text_conditioned_unet
from medgen.networks.utils import read_checkpoint

PROMPTS = ["Cardiomegaly. Small left effusion.", "No acute cardiopulmonary abnormality."]


def tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    from medgen.networks.text.scratch import build_vocab

    vocab = build_vocab(PROMPTS)
    enc = {
        "name": "scratch_transformer",
        "kwargs": {"vocab": vocab, "dim": 16, "depth": 1, "heads": 2, "max_tokens": 12},
    }
    return text_conditioned_unet(
        enc, latent_channels=2, channels=(8, 16), attention_levels=(False, True), num_res_blocks=1,
        num_head_channels=8, norm_num_groups=8,
    )  # fmt: skip


def test_null_prompt_dropout_rate_and_content():
    class Identity:
        def __call__(self, batch, device=None, non_blocking=False, **kw):
            return batch["image"], batch["image"], (), {"condition": batch["context"]}

    ctx = torch.ones(4000, 2, 5, dtype=torch.long)
    null = torch.zeros(2, 5, dtype=torch.long)
    for p in (0.0, 0.1, 0.5, 1.0):
        prep = NullPromptDropout(Identity(), null, p, seed=3)
        out = prep({"image": torch.zeros(4000), "context": ctx})[3]["condition"]
        dropped = (out == 0).all(dim=(1, 2))
        assert (out[~dropped] == 1).all()  # a row is either kept whole or the null prompt whole
        assert float(dropped.float().mean()) == pytest.approx(p, abs=0.02)
        assert prep.dropped == int(dropped.sum()) and prep.seen == 4000
    with pytest.raises(ValueError, match="null_prob"):
        NullPromptDropout(Identity(), null, 1.5)


def test_training_null_conditioning_is_the_samplers_null_states():
    model = tiny_model()
    with torch.no_grad():
        from_ids = model.context_states(model.null_context(3))
        states, _ = model.text_encoder.null_states(3)
    torch.testing.assert_close(from_ids, states, rtol=0, atol=0)
    with torch.no_grad():
        prompt_states = model.context_states(model.pack(PROMPTS[:1]))
    assert not torch.allclose(prompt_states, states[:1])


def test_training_lowers_the_loss_and_keeps_ema_weights(tmp_path):
    from monai.networks.schedulers import DDPMScheduler

    model = tiny_model()
    g = torch.Generator().manual_seed(0)
    # two "images": latent patterns tied to the two prompts
    base = torch.randn(2, 2, 8, 8, generator=g)
    latents = torch.cat(
        [base[i % 2 : i % 2 + 1] + 0.05 * torch.randn(1, 2, 8, 8, generator=g) for i in range(16)]
    )
    prompts = [PROMPTS[i % 2] for i in range(16)]
    sched = DDPMScheduler(num_train_timesteps=100)
    noise = torch.randn(latents.shape, generator=g)
    t = torch.randint(0, 100, (16,), generator=g)
    noisy = sched.add_noise(latents, noise, t)

    def loss(m):
        with torch.no_grad():
            return float(torch.nn.functional.mse_loss(m(noisy, t, m.pack(prompts)), noise))

    before = loss(model)
    ema, info = train_text_diffusion(
        model, latents, prompts, epochs=25, batch_size=8, lr=3e-3, num_train_timesteps=100, ema_decay=0.9,
        save_path=tmp_path / "unet.pt", progress=False,
    )  # fmt: skip
    assert loss(model) < 0.7 * before, (before, loss(model))
    raw = dict(model.named_parameters())
    assert any(not torch.equal(p, raw[n]) for n, p in ema.named_parameters()), (
        "EMA weights equal the raw ones"
    )
    assert loss(ema) < before
    assert info["prediction_type"] == "epsilon" and info["num_train_timesteps"] == 100
    assert 0.0 <= info["null_share"] <= 0.4
    ckpt = read_checkpoint(tmp_path / "unet.pt")
    assert ckpt["arch"] == "text_conditioned_unet" and ckpt["prediction_type"] == "epsilon"
    assert ckpt["config"]["text_encoder"]["name"] == "scratch_transformer"
    # the trainable text encoder trained with the UNet
    fresh = tiny_model()
    assert not torch.equal(
        fresh.text_encoder.state_dict()[next(iter(fresh.text_encoder.state_dict()))],
        model.text_encoder.state_dict()[next(iter(model.text_encoder.state_dict()))],
    )


def test_bad_input_is_named():
    model = tiny_model()
    with pytest.raises(ValueError, match="one prompt per image"):
        train_text_diffusion(model, torch.zeros(3, 2, 8, 8), PROMPTS, epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"\(N, 2, h, w\)"):
        train_text_diffusion(model, torch.zeros(2, 3, 8, 8), PROMPTS, epochs=1, progress=False)
    with pytest.raises(ValueError, match="prediction_type"):
        train_text_diffusion(model, torch.zeros(2, 2, 8, 8), PROMPTS, prediction_type="x0", progress=False)
    with pytest.raises(ValueError, match="empty"):
        model.pack([""])


def test_trained_parts_sample_end_to_end_through_the_guided_sampler():
    """Autoencoder + text-conditioned UNet + its encoder -> TextLatentDiffusionSampler: images in [0, 1], the same
    seed gives the same image batched or alone, guidance changes the image."""
    from monai.networks.schedulers import DDIMScheduler

    from medgen.inferers.text_ldm import TextLatentDiffusionSampler
    from medgen.networks.nets.latent_autoencoder import cxr_ldm_autoencoder

    torch.manual_seed(0)
    ae = cxr_ldm_autoencoder(channels=(8, 16), latent_channels=2, num_res_blocks=1, norm_num_groups=4).eval()
    ae.scale_factor.fill_(1.7)
    model = tiny_model()
    with torch.no_grad():  # MONAI zero-initialises output and attention projections: give them weights
        for p in model.unet.parameters():
            if p.ndim > 1 and not p.any():
                p.normal_(std=0.05)
    sampler = TextLatentDiffusionSampler(
        model.text_encoder, model, ae.vae, DDIMScheduler(100, clip_sample=False), float(ae.scale_factor),
        ae.latent_shape(16),
    )  # fmt: skip
    both = sampler.generate(PROMPTS, steps=5, guidance=4.0, seed=3, batch_size=2)
    alone = sampler.generate(PROMPTS[1:], steps=5, guidance=4.0, seed=4, batch_size=1)
    assert both.shape == (2, 1, 16, 16) and 0.0 <= float(both.min()) and float(both.max()) <= 1.0
    torch.testing.assert_close(both[1:], alone, rtol=0, atol=1e-5)
    g1 = sampler.generate(PROMPTS[1:], steps=5, guidance=1.0, seed=4, batch_size=1)
    assert not torch.allclose(g1, alone, atol=1e-4)
