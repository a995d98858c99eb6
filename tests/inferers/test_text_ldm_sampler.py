"""Guided, batched DDIM sampling for text-conditioned latent diffusion (``medgen.inferers.text_ldm``).

Tiny networks only: a 2-level ``DiffusionModelUNet`` on 4x8x8 latents, a 1-layer scratch text encoder with a word
vocabulary (no download), a 2-level ``AutoencoderKL``; a few DDIM steps on a 100-step schedule.
"""

from __future__ import annotations

import pytest
import torch
from monai.networks.nets import AutoencoderKL, DiffusionModelUNet
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler
from torch import nn

from medgen.inferers.text_ldm import TextLatentDiffusionSampler, guided_ddim_sample
from medgen.networks.text.scratch import ScratchTransformerEncoder, build_vocab

REPORTS = [
    "Heart size is normal. Lungs are clear.",
    "Small right pleural effusion.",
    "No pneumothorax.",
    "Mild cardiomegaly with clear lungs.",
]
D, C, H, W = 16, 4, 8, 8
TRAIN_STEPS, STEPS = 100, 4
ATOL = 1e-5


def _scheduler(**kwargs) -> DDIMScheduler:
    return DDIMScheduler(num_train_timesteps=TRAIN_STEPS, **{"clip_sample": False, **kwargs})


@pytest.fixture(scope="module")
def unet() -> DiffusionModelUNet:
    torch.manual_seed(0)
    net = DiffusionModelUNet(
        spatial_dims=2,
        in_channels=C,
        out_channels=C,
        channels=(8, 16),
        attention_levels=(False, True),
        num_res_blocks=1,
        num_head_channels=8,
        with_conditioning=True,
        cross_attention_dim=D,
        norm_num_groups=8,
    )
    # MONAI zero-initialises the output conv, each res block's conv2 and the attention proj_out: untrained, the
    # UNet would predict 0 and ignore its context, and guidance could change nothing. Random weights there.
    with torch.no_grad():
        for p in net.parameters():
            if p.ndim > 1 and not p.any():
                p.normal_(0.0, 0.1)
    return net.eval()


@pytest.fixture(scope="module")
def encoder() -> ScratchTransformerEncoder:
    torch.manual_seed(1)
    return ScratchTransformerEncoder(
        vocab=build_vocab(REPORTS), dim=D, depth=1, heads=2, max_tokens=16
    ).eval()


@pytest.fixture(scope="module")
def contexts(encoder):
    with torch.no_grad():
        return encoder.encode(REPORTS[:3])[0], encoder.null_states(3)[0]


class Recorder(nn.Module):
    """Wraps the UNet; records (batch, timesteps, context) of every call."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net, self.calls = net, []

    def forward(self, x, timesteps, context):
        self.calls.append((x.shape[0], timesteps.clone(), context.clone()))
        return self.net(x, timesteps=timesteps, context=context)


@torch.no_grad()
def reference(unet, scheduler, cond, seeds, eta=0.0, guidance=None, uncond=None):
    """A hand-written loop on MONAI's ``scheduler.step``: conditional only, or guided with two separate passes."""
    assert eta == 0 or len(seeds) == 1, (
        "scheduler.step draws eta noise for the whole batch from one generator"
    )
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    x = torch.cat([torch.randn((1, C, H, W), generator=g) for g in gens])
    scheduler.set_timesteps(STEPS)
    for t in scheduler.timesteps:
        ts = torch.full((len(seeds),), int(t), dtype=torch.long)
        out = unet(x, timesteps=ts, context=cond)
        if guidance is not None:
            out_u = unet(x, timesteps=ts, context=uncond)
            out = out_u + guidance * (out - out_u)
        x, _ = scheduler.step(out, int(t), x, eta=eta, generator=gens[0])
    return x


def sample(unet, cond, uncond, seeds, guidance=4.0, eta=0.0, scheduler=None, **kwargs):
    scheduler = scheduler or _scheduler()
    shape = (cond.shape[0], C, H, W)
    return guided_ddim_sample(
        unet, scheduler, cond, uncond, shape, guidance, STEPS, eta, seeds=seeds, **kwargs
    )


def test_the_tiny_unet_depends_on_its_context(unet, contexts):
    cond, uncond = contexts
    x, t = torch.randn(3, C, H, W), torch.full((3,), 50)
    with torch.no_grad():
        diff = (unet(x, timesteps=t, context=cond) - unet(x, timesteps=t, context=uncond)).abs().mean()
    assert diff > 1e-2  # otherwise every guidance test below would pass vacuously


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("clip_sample", [False, True])
def test_guidance_one_is_the_conditional_only_monai_loop(unet, contexts, prediction_type, clip_sample):
    cond, uncond = contexts
    rec = Recorder(unet)
    kw = dict(prediction_type=prediction_type, clip_sample=clip_sample)
    ours = sample(rec, cond, uncond, [0, 1, 2], guidance=1.0, scheduler=_scheduler(**kw))
    ref = reference(unet, _scheduler(**kw), cond, [0, 1, 2])
    torch.testing.assert_close(ours, ref, atol=ATOL, rtol=0)
    assert [c[0] for c in rec.calls] == [3] * STEPS  # no unconditional branch at all
    assert all(torch.equal(c[2], cond) for c in rec.calls)


def test_guided_one_pass_equals_two_separate_passes(unet, contexts):
    cond, uncond = contexts
    ours = sample(unet, cond, uncond, [0, 1, 2], guidance=4.0)
    ref = reference(unet, _scheduler(), cond, [0, 1, 2], guidance=4.0, uncond=uncond)
    torch.testing.assert_close(ours, ref, atol=ATOL, rtol=0)  # guidance formula and branch order


def test_guidance_changes_the_output(unet, contexts):
    cond, uncond = contexts
    g1, g4 = (sample(unet, cond, uncond, [0, 1, 2], guidance=g) for g in (1.0, 4.0))
    assert (g1 - g4).abs().mean() > 1e-2


def test_one_unet_call_per_step_with_both_branches(unet, contexts):
    cond, uncond = contexts
    rec, scheduler = Recorder(unet), _scheduler()
    sample(rec, cond, uncond, [0, 1, 2], guidance=3.0, scheduler=scheduler)
    assert len(rec.calls) == STEPS
    for (batch, timesteps, context), t in zip(rec.calls, scheduler.timesteps):
        assert batch == 6 and torch.equal(timesteps, torch.full((6,), int(t)))
        assert torch.equal(context[:3], uncond) and torch.equal(context[3:], cond)


@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_a_seed_gives_the_same_image_alone_or_batched(unet, contexts, eta):
    cond, uncond = contexts
    batched = sample(unet, cond, uncond, [5, 6, 7], eta=eta)
    for i, seed in enumerate([5, 6, 7]):
        alone = sample(unet, cond[i : i + 1], uncond[i : i + 1], [seed], eta=eta)
        torch.testing.assert_close(batched[i : i + 1], alone, atol=ATOL, rtol=0)
    gens = [torch.Generator().manual_seed(s) for s in [5, 6, 7]]
    from_generators = sample(unet, cond, uncond, None, eta=eta, generators=gens)
    torch.testing.assert_close(from_generators, batched, atol=0, rtol=0)


def test_different_seeds_give_different_images(unet, contexts):
    cond, uncond = contexts
    same_prompt = cond[:1].expand(2, -1, -1)
    out = sample(unet, same_prompt, uncond[:2], [0, 1])
    assert (out[0] - out[1]).abs().mean() > 1e-2


def test_eta_noise_is_seeded_per_image_and_is_monai_s_update(unet, contexts):
    cond, uncond = contexts
    torch.manual_seed(123)
    a = sample(unet, cond, uncond, [0, 1, 2], eta=0.7)
    torch.manual_seed(456)  # the global RNG plays no part
    b = sample(unet, cond, uncond, [0, 1, 2], eta=0.7)
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert (a - sample(unet, cond, uncond, [0, 1, 2], eta=0.0)).abs().mean() > 1e-3  # eta noise is added
    # one image: the explicit update with its own generator is DDIMScheduler.step with that generator
    ours = sample(unet, cond[:1], None, [9], guidance=1.0, eta=0.7)
    torch.testing.assert_close(ours, reference(unet, _scheduler(), cond[:1], [9], eta=0.7), atol=ATOL, rtol=0)


def test_v_prediction_runs_and_differs_from_epsilon(unet, contexts):
    cond, uncond = contexts
    eps = sample(unet, cond, uncond, [0, 1, 2])
    v = sample(unet, cond, uncond, [0, 1, 2], scheduler=_scheduler(prediction_type="v_prediction"))
    assert torch.isfinite(v).all() and (v - eps).abs().mean() > 1e-2


@pytest.mark.parametrize(
    "change, error, match",
    [
        (dict(guidance_scale=0.5), ValueError, "guidance_scale"),
        (dict(guidance_scale=float("nan")), ValueError, "guidance_scale"),
        (dict(num_inference_steps=0), ValueError, "num_inference_steps"),
        (dict(num_inference_steps=TRAIN_STEPS + 1), ValueError, "num_inference_steps"),
        (dict(num_inference_steps=2.5), ValueError, "num_inference_steps"),
        (dict(eta=-0.1), ValueError, "eta"),
        (dict(eta=1.5), ValueError, "eta"),
        (dict(seeds=[0, 1]), ValueError, "seeds"),
        (dict(seeds=None), ValueError, "seeds"),
        (dict(generators=[torch.Generator()] * 3), ValueError, "exactly one"),
        (dict(prediction_type="sample"), ValueError, "prediction_type"),
        (dict(prediction_type="v_prediction"), ValueError, "prediction_type"),
        (dict(uncond=None), ValueError, "uncond"),
        (dict(uncond=torch.zeros(3, 5, D)), ValueError, "padding='max_length'"),
        (dict(cond=torch.zeros(2, 16, D)), ValueError, "cond"),
        (dict(scheduler=DDPMScheduler(num_train_timesteps=TRAIN_STEPS)), TypeError, "DDIMScheduler"),
    ],
)
def test_bad_inputs_are_refused_naming_the_option(unet, contexts, change, error, match):
    cond, uncond = contexts
    rec = Recorder(unet)
    kwargs = dict(
        scheduler=_scheduler(), cond=cond, uncond=uncond, shape=(3, C, H, W), guidance_scale=4.0,
        num_inference_steps=STEPS, eta=0.0, seeds=[0, 1, 2],
    )  # fmt: skip
    with pytest.raises(error, match=match):
        guided_ddim_sample(rec, **{**kwargs, **change})
    assert not rec.calls


# ---------------------------------------------------------------------------------------------- the pipeline
class StubDecoder(nn.Module):
    """``decode_stage_2_outputs`` records its input and returns fixed values in and beyond [-1, 1]."""

    def __init__(self):
        super().__init__()
        self.inputs = []

    def decode_stage_2_outputs(self, z):
        self.inputs.append(z.clone())
        return torch.tensor([-1.0, 0.0, 1.0, 3.0]).view(1, 1, 2, 2).expand(z.shape[0], 1, 2, 2)


def _sampler(encoder, unet, autoencoder=None, **kwargs) -> TextLatentDiffusionSampler:
    if autoencoder is None:
        torch.manual_seed(2)
        autoencoder = AutoencoderKL(
            spatial_dims=2, in_channels=1, out_channels=1, channels=(8, 8), latent_channels=C, num_res_blocks=1,
            attention_levels=(False, False), norm_num_groups=8, with_encoder_nonlocal_attn=False,
            with_decoder_nonlocal_attn=False,
        )  # fmt: skip
    return TextLatentDiffusionSampler(encoder, unet, autoencoder, _scheduler(), 0.5, (C, H, W), **kwargs)


def test_generate_batched_equals_one_at_a_time(encoder, unet):
    sampler = _sampler(encoder, unet)
    prompts = REPORTS[:2]
    batched = sampler.generate(prompts, n_per_prompt=2, steps=3, guidance=3.0, seed=10, batch_size=3)
    assert batched.shape == (4, 1, 16, 16) and 0 <= batched.min() and batched.max() <= 1
    sequential = sampler.generate_sequential(prompts, n_per_prompt=2, steps=3, guidance=3.0, seed=10)
    torch.testing.assert_close(batched, sequential, atol=ATOL, rtol=0)
    # image i is seeded seed + i, prompt by prompt: image 2 is prompts[1] with seed 12
    third = sampler.generate([prompts[1]], steps=3, guidance=3.0, seed=12)
    torch.testing.assert_close(batched[2:3], third, atol=ATOL, rtol=0)
    assert (batched[0] - batched[1]).abs().mean() > 1e-3  # same prompt, seeds 10 and 11


def test_generate_encodes_once_per_batch_and_uses_the_null_states(encoder, unet, monkeypatch):
    sampler = _sampler(encoder, unet)
    sampler.unet = rec = Recorder(unet)
    encoded = []
    real_encode = encoder.encode
    monkeypatch.setattr(
        encoder, "encode", lambda prompts: encoded.append(list(prompts)) or real_encode(prompts)
    )
    sampler.generate(REPORTS[:2], n_per_prompt=2, steps=2, guidance=2.0, batch_size=3)  # batches AAB, B
    assert encoded == [REPORTS[:2], [REPORTS[1]]]  # each batch's distinct prompts, in one call
    assert [c[0] for c in rec.calls] == [6, 6, 2, 2]
    with torch.no_grad():
        states = real_encode(REPORTS[:2])[0]
        for (_, _, context), rows in zip(rec.calls, [[0, 0, 1], [0, 0, 1], [1], [1]]):
            b = len(rows)
            assert torch.equal(context[:b], encoder.null_states(b)[0])
            torch.testing.assert_close(context[b:], states[rows], atol=ATOL, rtol=0)


@pytest.mark.parametrize(
    "data_range, expected", [((-1, 1), [0.0, 0.5, 1.0, 1.0]), ((0, 1), [0.0, 0.0, 1.0, 1.0])]
)
def test_decode_unscales_latents_and_maps_the_data_range(encoder, unet, data_range, expected):
    stub = StubDecoder()
    sampler = _sampler(encoder, unet, stub, data_range=data_range)
    latents = sampler.generate(REPORTS[:1], steps=2, guidance=2.0, seed=3, decode=False)
    images = sampler.generate(REPORTS[:1], steps=2, guidance=2.0, seed=3)
    torch.testing.assert_close(stub.inputs[-1], latents / 0.5, atol=ATOL, rtol=0)
    assert images.flatten().tolist() == expected


def test_generate_restores_training_modes(encoder, unet):
    sampler = _sampler(encoder, unet)
    unet.train()
    try:
        sampler.generate(REPORTS[:1], steps=1, guidance=1.0)
        assert unet.training and all(m.training for m in unet.modules())
    finally:
        unet.eval()


@pytest.mark.parametrize(
    "prompts, change, error, match",
    [
        ([], {}, ValueError, "prompts"),
        ("No pneumothorax.", {}, TypeError, "list of prompts"),
        ([REPORTS[0], "  "], {}, ValueError, "prompt 1 is empty"),
        ([REPORTS[0]], dict(steps=0), ValueError, "steps"),
        ([REPORTS[0]], dict(steps=TRAIN_STEPS + 1), ValueError, "steps"),
        ([REPORTS[0]], dict(guidance=0.5), ValueError, "guidance"),
        ([REPORTS[0]], dict(eta=2.0), ValueError, "eta"),
        ([REPORTS[0]], dict(n_per_prompt=0), ValueError, "n_per_prompt"),
        ([REPORTS[0]], dict(batch_size=0), ValueError, "batch_size"),
    ],
)
def test_generate_refuses_bad_input_before_sampling(encoder, unet, prompts, change, error, match):
    sampler = _sampler(encoder, unet, StubDecoder())
    sampler.unet = rec = Recorder(unet)
    with pytest.raises(error, match=match):
        sampler.generate(prompts, **{"steps": 2, **change})
    assert not rec.calls
