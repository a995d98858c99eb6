"""Report text -> chest X-ray latent diffusion sampling: guided, batched DDIM with per-image seeds.

The loop is written out as diffusers' pipelines write it: MONAI's ``LatentDiffusionInferer`` fills the
unconditional branch with a constant, while text needs the encoding of the empty prompt
(``TextEncoder.null_states``), the conditioning the null prompt had in training.

* :func:`guided_ddim_sample`: classifier-free guidance, both branches in one UNet pass per step.
* :func:`ddim_step`: ``DDIMScheduler.step``'s arithmetic with the eta noise passed in (``step`` draws it for the
  whole batch from one generator). Each image draws its initial and eta noise from its own CPU ``torch.Generator``,
  so it comes out the same alone or in any batch, on any device.
* :class:`TextLatentDiffusionSampler`: prompts -> images in [0, 1], image ``i`` seeded ``seed + i``.
* :func:`load_text_ldm` / :meth:`TextLatentDiffusionSampler.from_checkpoints`: the sampler from the
  ``cxr_text_ldm`` bundle's ``models/autoencoder.pt`` and ``models/unet.pt``, checked against each other.
"""

from __future__ import annotations

import contextlib
import logging
import math
import numbers
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from monai.networks.schedulers import DDIMScheduler
from monai.utils import optional_import
from torch import nn

if TYPE_CHECKING:
    from medgen.networks.text import TextEncoder

logger = logging.getLogger(__name__)

__all__ = [
    "PREDICTION_TYPES",
    "TextLatentDiffusionSampler",
    "check_prompts",
    "ddim_step",
    "guided_ddim_sample",
    "load_text_ldm",
]

PREDICTION_TYPES = ("epsilon", "v_prediction")
# the cxr_text_ldm bundle's checkpoints: <bundle_root>/models/autoencoder.pt and unet.pt
BUNDLE = "cxr_text_ldm"
AUTOENCODER_ARCH, UNET_ARCH = "cxr_ldm_autoencoder", "text_conditioned_unet"
AUTOENCODER_FILE, UNET_FILE = "autoencoder.pt", "unet.pt"
UNET_EXTRAS = ("num_train_timesteps", "prediction_type", "image_size", "latent_shape")


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


def check_prompts(prompts: Sequence[str], n_per_prompt: int = 1, batch_size: int = 1) -> list[str]:
    """The prompt list every generation path accepts: a list of non-blank strings, counts >= 1."""
    if isinstance(prompts, str):
        raise TypeError(
            f"generation takes a list of prompts, not one string: a list of report texts; pass [{prompts[:40]!r}...] "
            "for one prompt"
        )
    prompts = list(prompts)
    if not prompts:
        raise ValueError("no prompts: give at least one report text")
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(
                f"prompt {i} is empty ({prompt!r}): give report text (the unconditional branch is "
                "encoder.null_states, never an empty prompt)"
            )
    for name, value in (("n_per_prompt", n_per_prompt), ("batch_size", batch_size)):
        if not _is_int(value) or value < 1:
            raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}")
    return prompts


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

    #: set by :meth:`from_checkpoints` for provenance (a sampler built by hand keeps these defaults): the image
    #: size and model name, the two checkpoint paths, and the UNet checkpoint's training extras
    image_size: int | None = None
    model_name: str = "text_ldm"
    checkpoints: dict[str, str] | None = None
    training: dict[str, Any] | None = None

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

    @classmethod
    def from_networks(
        cls,
        autoencoder: nn.Module,
        unet: nn.Module,
        num_train_timesteps: int,
        prediction_type: str,
        schedule: str = "linear_beta",
        device: str | torch.device | None = None,
        latent_shape: Sequence[int] | None = None,
        image_size: int | None = None,
    ) -> TextLatentDiffusionSampler:
        """A sampler over a :class:`~medgen.networks.nets.latent_autoencoder.LatentAutoencoder` and a
        :class:`~medgen.networks.nets.text_ldm.TextConditionedUNet`, with the DDIM of the training schedule
        (MONAI's default linear betas, as ``train_text_diffusion``'s ``DDPMScheduler``) and ``clip_sample=False``;
        ``latent_shape`` or ``image_size`` gives the latent size."""
        if latent_shape is None:
            if image_size is None:
                raise ValueError("from_networks: give latent_shape or image_size")
            latent_shape = autoencoder.latent_shape(int(image_size))
        scheduler = DDIMScheduler(
            num_train_timesteps=int(num_train_timesteps),
            schedule=schedule,
            prediction_type=prediction_type,
            clip_sample=False,
        )
        return cls(unet.text_encoder, unet, autoencoder.vae, scheduler, float(autoencoder.scale_factor),
                   latent_shape, device=device)  # fmt: skip

    def _plan(self, prompts, n_per_prompt, seed, batch_size) -> list[tuple[list[str], list[int]]]:
        """Validate; ``[(prompts of a batch, seeds of the batch), ...]``, image i seeded ``seed + i``."""
        prompts = check_prompts(prompts, n_per_prompt, batch_size)
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

    @classmethod
    def from_checkpoints(
        cls,
        autoencoder: str | Path,
        unet: str | Path,
        device: str | torch.device | None = None,
        model_name: str = BUNDLE,
    ) -> TextLatentDiffusionSampler:
        """The sampler from an autoencoder and a UNet checkpoint, each rebuilt from the registry.

        ``autoencoder``: ``save_checkpoint(path, LatentAutoencoder)`` (arch ``cxr_ldm_autoencoder``, its
        ``scale_factor`` in the state dict). ``unet``: ``save_checkpoint(path, TextConditionedUNet, ...)`` with the
        extras of ``train_text_diffusion`` (``num_train_timesteps``, ``prediction_type``) and of the bundle
        (``image_size``, ``latent_shape``, and ``autoencoder_scale_factor``: the factor its latents were made
        with). The DDIM scheduler is built on the training schedule (``DDPMScheduler``'s default
        ``linear_beta``, or the checkpoint's ``schedule``) with ``clip_sample=False``.

        Args:
            autoencoder: the autoencoder checkpoint.
            unet: the diffusion UNet checkpoint (the EMA weights); its text encoder is rebuilt from its config.
            device: where to run; default the CPU.
            model_name: the name that :attr:`model_name` starts with (then the two file names).

        Raises:
            FileNotFoundError: a file is missing (the message names the bundle command that writes it).
            ValueError: a checkpoint of another network, missing extras, a latent shape or scale factor that
                the two checkpoints disagree on (each message names the file and the fix).
            CheckpointError: a file cannot be read.
        """
        from medgen.networks.utils import apply_checkpoint, read_checkpoint

        ae_path, unet_path = Path(autoencoder), Path(unet)
        for path, workflow, what in (
            (ae_path, "train_autoencoder", "autoencoder"),
            (unet_path, "train_diffusion", "UNet"),
        ):
            if not path.is_file():
                raise FileNotFoundError(
                    f"text LDM {what} checkpoint {str(path)!r} does not exist: train it with "
                    f"`medgen run {BUNDLE} {workflow}` or point at the folder that holds it"
                )
        ae_ckpt, unet_ckpt = read_checkpoint(ae_path), read_checkpoint(unet_path)
        _check_arch(ae_ckpt, ae_path, AUTOENCODER_ARCH, "train_autoencoder")
        _check_arch(unet_ckpt, unet_path, UNET_ARCH, "train_diffusion")
        extras = _unet_extras(unet_ckpt, unet_path)
        ae = apply_checkpoint(ae_ckpt, source=str(ae_path)).eval()
        net = apply_checkpoint(unet_ckpt, source=str(unet_path)).eval()
        _check_pair(ae, net, extras, ae_path, unet_path)
        sampler = cls.from_networks(
            ae,
            net,
            extras["num_train_timesteps"],
            extras["prediction_type"],
            schedule=str(unet_ckpt.get("schedule", "linear_beta")),
            device="cpu" if device is None else device,
            latent_shape=extras["latent_shape"],
        )
        sampler.image_size = extras["image_size"]
        sampler.model_name = f"{model_name} ({ae_path.name}, {unet_path.name})"
        sampler.checkpoints = {"autoencoder": str(ae_path.resolve()), "unet": str(unet_path.resolve())}
        sampler.training = {
            k: v for k, v in unet_ckpt.items() if k not in ("arch", "scale", "config", "state_dict")
        }
        return sampler


# ------------------------------------------------------------------------------------------------ loading
def load_text_ldm(
    models_dir: str | Path, device: str | torch.device | None = None
) -> TextLatentDiffusionSampler:
    """:meth:`TextLatentDiffusionSampler.from_checkpoints` on ``<models_dir>/autoencoder.pt`` and
    ``<models_dir>/unet.pt`` (the ``cxr_text_ldm`` bundle's ``models/`` folder); ``device`` default the CPU."""
    folder = Path(models_dir)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"text LDM models folder {str(folder)!r} does not exist: it should hold {AUTOENCODER_FILE} and "
            f"{UNET_FILE}, written by `medgen run {BUNDLE} train_autoencoder` then `... train_diffusion`"
        )
    return TextLatentDiffusionSampler.from_checkpoints(folder / AUTOENCODER_FILE, folder / UNET_FILE, device)


def _check_arch(ckpt: Mapping[str, Any], path: Path, arch: str, workflow: str) -> None:
    found = ckpt.get("arch")
    if found != arch:
        what = f"holds a {found!r} network" if found else "has no medgen architecture metadata"
        raise ValueError(
            f"checkpoint {str(path)!r} {what}, expected {arch!r}: pass the file that "
            f"`medgen run {BUNDLE} {workflow}` writes ({AUTOENCODER_FILE} is the autoencoder, {UNET_FILE} the UNet)"
        )


def _unet_extras(ckpt: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The UNet checkpoint's sampling settings, checked; a missing or malformed one names the file and the fix."""
    missing = [k for k in UNET_EXTRAS if k not in ckpt]
    fix = f"retrain it with `medgen run {BUNDLE} train_diffusion` (which saves them)"
    if missing:
        raise ValueError(f"UNet checkpoint {str(path)!r} lacks the sampling settings {missing}: {fix}")
    steps, kind, size, shape = (ckpt[k] for k in UNET_EXTRAS)
    if not _is_int(steps) or steps < 1:
        raise ValueError(
            f"UNet checkpoint {str(path)!r}: num_train_timesteps={steps!r} is not a positive integer; {fix}"
        )
    if kind not in PREDICTION_TYPES:
        raise ValueError(
            f"UNet checkpoint {str(path)!r}: prediction_type={kind!r} is not one of {PREDICTION_TYPES}; {fix}"
        )
    if not _is_int(size) or size < 1:
        raise ValueError(
            f"UNet checkpoint {str(path)!r}: image_size={size!r} is not a positive integer; {fix}"
        )
    shape = list(shape) if isinstance(shape, (list, tuple)) else shape
    if not isinstance(shape, list) or len(shape) != 3 or not all(_is_int(s) and s > 0 for s in shape):
        raise ValueError(f"UNet checkpoint {str(path)!r}: latent_shape={shape!r} is not [C, h, w]; {fix}")
    factor = ckpt.get("autoencoder_scale_factor")
    real = isinstance(factor, numbers.Real) and not isinstance(factor, bool)
    if factor is not None and (not real or not math.isfinite(factor) or factor <= 0):
        raise ValueError(
            f"UNet checkpoint {str(path)!r}: autoencoder_scale_factor={factor!r} is not a number > 0; {fix}"
        )
    return {
        "num_train_timesteps": int(steps),
        "prediction_type": kind,
        "image_size": int(size),
        "latent_shape": tuple(int(s) for s in shape),
        "autoencoder_scale_factor": None if factor is None else float(factor),
    }


def _check_pair(
    ae: nn.Module, unet: nn.Module, extras: Mapping[str, Any], ae_path: Path, unet_path: Path
) -> None:
    """The UNet was trained on this autoencoder's latents: channels, latent shape and scale factor agree."""
    shape, size = extras["latent_shape"], extras["image_size"]
    retrain = f"retrain the UNet on this autoencoder (`medgen run {BUNDLE} train_diffusion`)"
    names = f"UNet {str(unet_path)!r} and autoencoder {str(ae_path)!r}"
    if int(unet.latent_channels) != int(ae.latent_channels) or shape[0] != int(ae.latent_channels):
        raise ValueError(
            f"{names} disagree on latent channels (UNet {unet.latent_channels}, latent_shape {list(shape)}; "
            f"autoencoder {ae.latent_channels}): a checkpoint of another latent shape; {retrain}"
        )
    try:
        expected = tuple(ae.latent_shape(size))
    except ValueError as exc:
        raise ValueError(
            f"{names}: image_size={size} of the UNet does not fit the autoencoder ({exc}); {retrain}"
        ) from None
    if tuple(shape) != expected:
        raise ValueError(
            f"{names}: the UNet was trained on latents {list(shape)} but the autoencoder makes {list(expected)} "
            f"from {size} px images: a checkpoint of another latent shape; {retrain}"
        )
    factor, trained = float(ae.scale_factor), extras.get("autoencoder_scale_factor")
    if not math.isfinite(factor) or factor <= 0:
        raise ValueError(
            f"autoencoder {str(ae_path)!r} has scale_factor={factor}: retrain it "
            f"(`medgen run {BUNDLE} train_autoencoder`), then the UNet"
        )
    if trained is None:
        logger.warning(
            "UNet checkpoint %s has no autoencoder_scale_factor: cannot check that it was trained on the latents "
            "of %s (scale_factor %.6g)", unet_path, ae_path, factor,
        )  # fmt: skip
    elif not math.isclose(factor, trained, rel_tol=1e-5):
        raise ValueError(
            f"{names}: the UNet was trained on latents scaled by {trained:.6g} but the autoencoder's scale_factor "
            f"is {factor:.6g}: the autoencoder was retrained after the UNet; {retrain}"
        )
