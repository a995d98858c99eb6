"""Report text -> chest X-ray latent diffusion sampling: guided, batched DDIM with per-image seeds.

The loop is written out as diffusers' pipelines write it: MONAI's ``LatentDiffusionInferer`` fills the
unconditional branch with a constant, while text needs the encoding of the empty prompt
(``TextEncoder.null_states``), the conditioning the null prompt had in training.

* :func:`guided_ddim_sample`: classifier-free guidance, both branches in one UNet pass per step.
* :func:`ddim_step`: ``DDIMScheduler.step``'s arithmetic with the eta noise passed in (``step`` draws it for the
  whole batch from one generator). Each image draws its initial and eta noise from its own CPU ``torch.Generator``,
  so it comes out the same alone or in any batch, on any device.
* :class:`TextLatentDiffusionSampler`: prompts -> images in [0, 1], image ``i`` seeded ``seed + i``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import numbers
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import torch
from monai.networks.schedulers import DDIMScheduler
from monai.utils import optional_import
from torch import nn

if TYPE_CHECKING:
    from medgen.networks.text import TextEncoder

logger = logging.getLogger(__name__)

__all__ = ["PREDICTION_TYPES", "TextLatentDiffusionSampler", "ddim_step", "guided_ddim_sample"]

PREDICTION_TYPES = ("epsilon", "v_prediction")


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_scheduler(scheduler: DDIMScheduler) -> None:
    if not isinstance(scheduler, DDIMScheduler):
        raise TypeError(
            f"the sampler needs a monai.networks.schedulers.DDIMScheduler, got {type(scheduler).__name__}; "
            "build one with the num_train_timesteps and schedule the UNet was trained with"
        )


def _check_options(scheduler, guidance, steps, eta, names=("guidance_scale", "num_inference_steps", "eta")):
    """Refuse a non-DDIM scheduler, guidance < 1, steps outside [1, num_train_timesteps], eta outside [0, 1]."""
    g_name, s_name, e_name = names
    _check_scheduler(scheduler)
    real = isinstance(guidance, numbers.Real) and not isinstance(guidance, bool)
    if not real or not math.isfinite(guidance) or guidance < 1:
        raise ValueError(
            f"`{g_name}` must be a finite number >= 1 (1: conditional branch only, no guidance; 3-10 is usual), "
            f"got {guidance!r}; for unconditional samples pass the null states as the condition"
        )
    most = int(scheduler.num_train_timesteps)
    if not _is_int(steps) or not 1 <= steps <= most:
        raise ValueError(f"`{s_name}` must be an integer in [1, {most}] (num_train_timesteps), got {steps!r}")
    if not isinstance(eta, numbers.Real) or isinstance(eta, bool) or not 0 <= eta <= 1:
        raise ValueError(f"`{e_name}` must be in [0, 1] (0: deterministic DDIM, 1: DDPM-like), got {eta!r}")


def _prediction_type(scheduler: DDIMScheduler, prediction_type: str | None) -> str:
    kind = scheduler.prediction_type if prediction_type is None else prediction_type
    if kind not in PREDICTION_TYPES:
        raise ValueError(f"`prediction_type` must be one of {PREDICTION_TYPES}, got {kind!r}")
    if kind != scheduler.prediction_type:
        raise ValueError(
            f"`prediction_type`={kind!r} but the scheduler's is {scheduler.prediction_type!r}: build the "
            "DDIMScheduler with the prediction type the UNet was trained with, or leave prediction_type=None"
        )
    return kind


def _per_image_generators(seeds, generators, batch: int) -> list[torch.Generator]:
    if (seeds is None) == (generators is None):
        raise ValueError("pass exactly one of `seeds` (one int per image) or `generators` (one per image)")
    name, items = ("seeds", list(seeds)) if seeds is not None else ("generators", list(generators))
    if len(items) != batch:
        raise ValueError(
            f"`{name}` has {len(items)} entries for a batch of {batch}: give one per image "
            "(image i draws all its noise from its own generator)"
        )
    if generators is not None:
        if not all(isinstance(g, torch.Generator) for g in items):
            raise TypeError("`generators` must all be torch.Generator objects")
        return items
    if not all(_is_int(s) for s in items):
        raise ValueError(f"`seeds` must be integers, got {items!r}")
    return [torch.Generator(device="cpu").manual_seed(int(s)) for s in items]


def _per_image_noise(generators: Sequence[torch.Generator], shape, device: torch.device) -> torch.Tensor:
    """Standard normal ``(len(generators), *shape)``: row i from ``generators[i]`` alone (on its device)."""
    rows = [torch.randn((1, *shape), generator=g, device=g.device, dtype=torch.float32) for g in generators]
    return torch.cat([r.to(device) for r in rows])


@contextlib.contextmanager
def _eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) inside the block; every submodule's own training flag is put back afterwards."""
    flags = [(m, m.training) for module in modules for m in module.modules()]
    for module in modules:
        module.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def _progress(items: Iterable, enabled: bool, desc: str) -> Iterable:
    tqdm, has_tqdm = optional_import("tqdm.auto", name="tqdm")
    return tqdm(items, desc=desc, leave=False) if enabled and has_tqdm else items


def ddim_step(scheduler, model_output, timestep, sample, eta=0.0, noise=None, prediction_type=None):
    """One DDIM update from ``timestep``, as ``DDIMScheduler.step`` computes it, with the eta noise given.

    Formulas (12) and (16) of Song et al. (DDIM) on the scheduler's ``alphas_cumprod``: ``x0`` from the output
    (``epsilon``: ``(x - sqrt(1-a_t) out) / sqrt(a_t)``; ``v_prediction``: ``sqrt(a_t) x - sqrt(1-a_t) out``),
    clipped to ``clip_sample_values`` when ``scheduler.clip_sample``; ``sigma = eta sqrt((1-a_prev)/(1-a_t)
    (1 - a_t/a_prev))``; ``x_prev = sqrt(a_prev) x0 + sqrt(1-a_prev-sigma^2) eps + sigma noise``. As in MONAI the
    previous timestep is ``timestep - num_train_timesteps // num_inference_steps`` (``final_alpha_cumprod`` below
    0), so with ``eta=0``, or the same noise, the result equals ``scheduler.step``'s.

    Args:
        scheduler: the ``DDIMScheduler``, after ``set_timesteps``.
        model_output: the (guided) UNet output, shaped like ``sample``.
        timestep: the current timestep (an entry of ``scheduler.timesteps``).
        sample: the current latents ``x_t``.
        eta: DDIM noise weight in [0, 1].
        noise: standard normal, shaped like ``sample``; needed when ``eta > 0`` (the caller draws it per image).
        prediction_type: ``"epsilon"`` or ``"v_prediction"``; default the scheduler's.

    Returns:
        ``(x_prev, predicted x0)``.
    """
    kind = scheduler.prediction_type if prediction_type is None else prediction_type
    timestep = int(timestep)
    prev_timestep = timestep - scheduler.num_train_timesteps // scheduler.num_inference_steps
    alphas, final = scheduler.alphas_cumprod, torch.as_tensor(scheduler.final_alpha_cumprod)
    # 0-dim float32 CPU tensors as in step(): the same rounding, and usable with latents on any device
    a_t = alphas[timestep].detach().to("cpu", torch.float32)
    a_prev = (alphas[prev_timestep] if prev_timestep >= 0 else final).detach().to("cpu", torch.float32)
    b_t = 1 - a_t
    if kind == "epsilon":
        x0, eps = (sample - (b_t**0.5) * model_output) / (a_t**0.5), model_output
    elif kind == "v_prediction":
        x0 = (a_t**0.5) * sample - (b_t**0.5) * model_output
        eps = (a_t**0.5) * model_output + (b_t**0.5) * sample
    else:
        raise ValueError(f"`prediction_type` must be one of {PREDICTION_TYPES}, got {kind!r}")
    if scheduler.clip_sample:
        x0 = torch.clamp(x0, *scheduler.clip_sample_values)
    variance = ((1 - a_prev) / b_t) * (1 - a_t / a_prev)
    std_dev_t = eta * variance**0.5
    x_prev = a_prev**0.5 * x0 + (1 - a_prev - std_dev_t**2) ** 0.5 * eps
    if eta > 0:
        if noise is None or noise.shape != sample.shape:
            raise ValueError("ddim_step: eta > 0 needs standard normal `noise` shaped like `sample`")
        x_prev = x_prev + variance**0.5 * eta * noise
    return x_prev, x0


@torch.no_grad()
def guided_ddim_sample(
    unet: nn.Module,
    scheduler: DDIMScheduler,
    cond: torch.Tensor,
    uncond: torch.Tensor | None,
    shape: Sequence[int],
    guidance_scale: float = 7.5,
    num_inference_steps: int = 50,
    eta: float = 0.0,
    seeds: Sequence[int] | None = None,
    generators: Sequence[torch.Generator] | None = None,
    prediction_type: str | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Sample latents with classifier-free guidance, both branches in one UNet pass per step.

    Each step calls ``unet(cat([x, x]), timesteps=t, context=cat([uncond, cond]))`` once (batch ``2B``) and
    guides ``out_u + guidance_scale * (out_c - out_u)`` (the noise, or v); ``guidance_scale == 1`` calls
    ``unet(x, timesteps=t, context=cond)`` (batch ``B``) and ignores ``uncond``. Image ``i`` draws its initial
    noise, then its eta noise at each step, from its own generator. The UNet runs in eval mode (modes restored).

    Args:
        unet: ``DiffusionModelUNet(with_conditioning=True, cross_attention_dim=D)`` or any module called as
            ``unet(x, timesteps=t, context=ctx)``.
        scheduler: a MONAI ``DDIMScheduler`` (``set_timesteps`` is called here); for unit-variance latents
            build it with ``clip_sample=False`` (its default clips the predicted x0 to [-1, 1]).
        cond: conditional context ``(B, T, D)``, e.g. ``encoder.encode(prompts)[0]``.
        uncond: unconditional context ``(B or 1, T, D)``, e.g. ``encoder.null_states(B)[0]``, with the ``T`` of
            ``cond`` (encode with ``padding="max_length"``); may be None when ``guidance_scale == 1``.
        shape: latent shape ``(B, C, *spatial)``.
        guidance_scale: >= 1; 1 is the conditional model alone.
        num_inference_steps: DDIM steps, 1 to ``scheduler.num_train_timesteps``.
        eta: DDIM noise weight in [0, 1] (0: deterministic given the initial noise).
        seeds: one int per image, each seeding a CPU ``torch.Generator``.
        generators: instead of ``seeds``, one ``torch.Generator`` per image (noise drawn on its device).
        prediction_type: ``"epsilon"`` or ``"v_prediction"``; None: the scheduler's (another one is refused).
        progress: a tqdm bar over the steps (when tqdm is installed).

    Returns:
        The final latents ``(B, C, *spatial)`` float32 on the UNet's device.

    Raises:
        ValueError: an option out of range (named), a context of the wrong shape, not one seed per image.
        TypeError: ``scheduler`` is not a ``DDIMScheduler``.
    """
    _check_options(scheduler, guidance_scale, num_inference_steps, eta)
    kind = _prediction_type(scheduler, prediction_type)
    shape = tuple(int(s) for s in shape)
    if len(shape) < 3 or min(shape) < 1:
        raise ValueError(f"`shape` must be (batch, channels, *spatial) with positive sizes, got {shape}")
    batch = shape[0]
    if getattr(unet, "with_conditioning", True) is False:
        raise ValueError("the UNet takes no context: build DiffusionModelUNet(with_conditioning=True, ...)")
    if not torch.is_tensor(cond) or cond.ndim != 3 or cond.shape[0] != batch:
        got = tuple(cond.shape) if torch.is_tensor(cond) else type(cond).__name__
        raise ValueError(f"`cond` must be (batch={batch}, tokens, dim) token states, got {got}")
    device = next((p.device for p in unet.parameters()), cond.device)
    guided = guidance_scale != 1
    context = cond.to(device)
    if guided:
        if not torch.is_tensor(uncond) or uncond.ndim != 3 or uncond.shape[0] not in (1, batch):
            got = tuple(uncond.shape) if torch.is_tensor(uncond) else uncond
            raise ValueError(
                f"`uncond` must be (batch={batch} or 1, tokens, dim), e.g. encoder.null_states(batch)[0], for "
                f"guidance_scale={guidance_scale} > 1; got {got}"
            )
        if uncond.shape[1:] != cond.shape[1:]:
            raise ValueError(
                f"`uncond` is {tuple(uncond.shape)}, `cond` {tuple(cond.shape)}: tokens and dim must match; "
                "encode with padding='max_length' so prompts and the null prompt all have max_tokens tokens"
            )
        context = torch.cat([uncond.expand(batch, -1, -1).to(device), context])
    gens = _per_image_generators(seeds, generators, batch)
    latents = _per_image_noise(gens, shape[1:], device) * scheduler.init_noise_sigma
    scheduler.set_timesteps(num_inference_steps)
    with _eval_mode(unet):
        for t in _progress(scheduler.timesteps, progress, "DDIM"):
            t = int(t)
            x_in = torch.cat([latents, latents]) if guided else latents
            timesteps = torch.full((x_in.shape[0],), t, dtype=torch.long, device=device)
            out = unet(x_in, timesteps=timesteps, context=context).float()
            if guided:
                out_u, out_c = out.chunk(2)
                out = out_u + guidance_scale * (out_c - out_u)
            noise = _per_image_noise(gens, shape[1:], device) if eta > 0 else None
            latents, _ = ddim_step(scheduler, out, t, latents, eta=eta, noise=noise, prediction_type=kind)
    return latents


class TextLatentDiffusionSampler:
    """Report texts -> images in [0, 1]: text encoder, guided DDIM in latent space, ``AutoencoderKL`` decoder.

    Images come prompt by prompt and image ``i`` is seeded ``seed + i`` (the same for any ``batch_size``). A
    batch encodes its distinct prompts in one ``encode`` call; the unconditional context is
    ``encoder.null_states(batch)[0]`` (the null prompt of training). The mask is unused: MONAI's cross-attention
    takes none. Data range: the autoencoder's images live in ``data_range`` (default ``(-1, 1)``);
    ``decode_stage_2_outputs(latents / scale_factor)`` is mapped linearly from it to [0, 1] and clipped.

    Args:
        text_encoder: a :class:`~medgen.networks.text.TextEncoder` (``encode``, ``null_states``).
        unet: ``DiffusionModelUNet(with_conditioning=True, cross_attention_dim=text_encoder.dim)``.
        autoencoder: an ``AutoencoderKL`` (anything with ``decode_stage_2_outputs``).
        scheduler: the ``DDIMScheduler`` of training (num_train_timesteps, schedule, prediction_type), with
            ``clip_sample=False`` for unit-variance latents (a warning is logged otherwise).
        scale_factor: what latents were multiplied by in training (1 / std of the autoencoder's latents).
        latent_shape: ``(C, h, w)`` of one latent.
        data_range: ``(low, high)`` of the autoencoder's image space.
        device: where the UNet and autoencoder run; default the UNet's device.
    """

    def __init__(
        self,
        text_encoder: TextEncoder,
        unet: nn.Module,
        autoencoder: nn.Module,
        scheduler: DDIMScheduler,
        scale_factor: float,
        latent_shape: Sequence[int],
        data_range: tuple[float, float] = (-1.0, 1.0),
        device: str | torch.device | None = None,
    ) -> None:
        if not isinstance(scale_factor, numbers.Real) or not math.isfinite(scale_factor) or scale_factor <= 0:
            raise ValueError(
                f"`scale_factor` must be a finite number > 0 (1 / latent std), got {scale_factor!r}"
            )
        if not (low := float(data_range[0])) < (high := float(data_range[1])):
            raise ValueError(
                f"`data_range` must be (low, high) with low < high, e.g. (-1, 1), got {data_range!r}"
            )
        self.latent_shape = tuple(int(s) for s in latent_shape)
        if len(self.latent_shape) < 2 or min(self.latent_shape) < 1:
            raise ValueError(f"`latent_shape` must be (channels, *spatial), got {tuple(latent_shape)}")
        if not hasattr(autoencoder, "decode_stage_2_outputs"):
            raise TypeError("`autoencoder` needs decode_stage_2_outputs (a MONAI AutoencoderKL)")
        _check_scheduler(scheduler)
        if scheduler.clip_sample:
            msg = "TextLatentDiffusionSampler: the scheduler clips predicted latents to %s; use clip_sample=False"
            logger.warning(msg, scheduler.clip_sample_values)
        self.device = torch.device(device) if device is not None else next(unet.parameters()).device
        self.text_encoder, self.scheduler = text_encoder, scheduler
        self.unet, self.autoencoder = unet.to(self.device), autoencoder.to(self.device)
        self.scale_factor, self.data_range = float(scale_factor), (low, high)

    def _plan(self, prompts, n_per_prompt, seed, batch_size) -> list[tuple[list[str], list[int]]]:
        """Validate; ``[(prompts of a batch, seeds of the batch), ...]``, image i seeded ``seed + i``."""
        if isinstance(prompts, str):
            raise TypeError(f"generate() takes a list of prompts; pass [{prompts[:40]!r}...] for one prompt")
        prompts = list(prompts)
        if not prompts:
            raise ValueError("`prompts` is empty: give at least one report text")
        for i, prompt in enumerate(prompts):
            if not isinstance(prompt, str) or not prompt.strip():
                raise ValueError(
                    f"prompt {i} is empty ({prompt!r}): give report text (the unconditional branch is "
                    "encoder.null_states, never an empty prompt)"
                )
        for name, value in (("n_per_prompt", n_per_prompt), ("batch_size", batch_size)):
            if not _is_int(value) or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}")
        if not _is_int(seed):
            raise ValueError(f"`seed` must be an integer (image i is seeded seed + i), got {seed!r}")
        images = [p for p in prompts for _ in range(int(n_per_prompt))]
        seeds = [int(seed) + i for i in range(len(images))]
        b = int(batch_size)
        return [(images[i : i + b], seeds[i : i + b]) for i in range(0, len(images), b)]

    def _sample_batch(self, prompts, seeds, steps, guidance, eta, progress) -> torch.Tensor:
        distinct = list(dict.fromkeys(prompts))
        states, _ = self.text_encoder.encode(distinct)
        cond = states[torch.tensor([distinct.index(p) for p in prompts], device=states.device)]
        uncond = self.text_encoder.null_states(len(prompts))[0] if guidance != 1 else None
        shape = (len(prompts), *self.latent_shape)
        return guided_ddim_sample(
            self.unet, self.scheduler, cond, uncond, shape, guidance, steps, eta, seeds, progress=progress
        )

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """``decode_stage_2_outputs(latents / scale_factor)`` mapped from ``data_range`` to [0, 1] (clipped)."""
        with _eval_mode(self.autoencoder):
            images = self.autoencoder.decode_stage_2_outputs(latents.to(self.device) / self.scale_factor)
        low, high = self.data_range
        return ((images.float() - low) / (high - low)).clamp(0.0, 1.0)

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[str],
        n_per_prompt: int = 1,
        steps: int = 50,
        guidance: float = 7.5,
        seed: int = 0,
        eta: float = 0.0,
        batch_size: int = 8,
        progress: bool = False,
        decode: bool = True,
    ) -> torch.Tensor:
        """Images for report texts.

        Args:
            prompts: report texts (non-empty strings).
            n_per_prompt: images per prompt (a prompt's images are adjacent).
            steps: DDIM steps, 1 to ``scheduler.num_train_timesteps``.
            guidance: classifier-free guidance scale, >= 1 (1: no guidance, no unconditional pass).
            seed: image ``i`` of the ``len(prompts) * n_per_prompt`` is seeded ``seed + i``.
            eta: DDIM noise weight in [0, 1].
            batch_size: images per UNet batch (the UNet sees ``2 * batch_size`` with guidance).
            progress: tqdm bars over batches and steps.
            decode: False returns the latents ``(N, C, h, w)`` as sampled (still multiplied by ``scale_factor``).

        Returns:
            ``(N, channels, H, W)`` float32 in [0, 1] on the CPU, ``N = len(prompts) * n_per_prompt``.

        Raises:
            TypeError: ``prompts`` is one string.
            ValueError: no prompts, an empty prompt, or an option out of range (named in the message).
        """
        _check_options(self.scheduler, guidance, steps, eta, names=("guidance", "steps", "eta"))
        plan = self._plan(prompts, n_per_prompt, seed, batch_size)
        out = []
        with _eval_mode(self.text_encoder, self.autoencoder):
            for batch_prompts, batch_seeds in _progress(plan, progress and len(plan) > 1, "batches"):
                latents = self._sample_batch(batch_prompts, batch_seeds, steps, guidance, eta, progress)
                out.append((self.decode(latents) if decode else latents).cpu())
        return torch.cat(out)

    def generate_sequential(self, prompts: Sequence[str], **kwargs) -> torch.Tensor:
        """The reference loop for benchmarks: :meth:`generate` one image at a time (``batch_size=1``)."""
        return self.generate(prompts, batch_size=1, **kwargs)
