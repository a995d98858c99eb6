"""Training of the text-to-X-ray LDM's diffusion stage on cached latents (MONAI ``SupervisedTrainer``).

The latents of the training images (:class:`~medgen.networks.nets.latent_autoencoder.LatentAutoencoder`, scaled)
and their prompts' packed token ids are cached once; every step draws noise and a timestep (MONAI
``DiffusionPrepareBatch`` / ``VPredictionPrepareBatch``), replaces each prompt by the null prompt ``""`` with
probability ``null_prob`` (classifier-free guidance training, 10 % as the seed system), and runs
:class:`~medgen.networks.nets.text_ldm.TextConditionedUNet` through MONAI's ``DiffusionInferer`` in
cross-attention mode. An exponential moving average of the weights (Ignite ``EMAHandler``) is kept and returned.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medgen.engines.autoencoder import cosine_lr_handler
from medgen.engines.diffusion import DiffusionModeInferer

__all__ = [
    "NullPromptDropout",
    "SampleGridHandler",
    "diffusion_prepare_batch",
    "diffusion_scheduler",
    "latent_prompt_items",
    "save_text_ldm",
    "text_ldm_info",
    "train_text_diffusion",
]

logger = logging.getLogger(__name__)
PREDICTION_TYPES = ("epsilon", "v_prediction")


class NullPromptDropout:
    """Wraps a MONAI diffusion ``prepare_batch``: each row's packed ``context`` becomes the null prompt's with
    probability ``p`` (drawn from its own seeded generator, so a run is reproducible)."""

    def __init__(self, prepare: Any, null_context: torch.Tensor, p: float, seed: int = 0) -> None:
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"null_prob must be in [0, 1] (the seed system: 0.1), got {p}")
        self.prepare, self.null, self.p = prepare, null_context, float(p)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.dropped = 0
        self.seen = 0

    def __call__(self, batchdata: dict, device: Any = None, non_blocking: bool = False, **kwargs: Any):
        images, target, args, infer_kwargs = self.prepare(batchdata, device, non_blocking, **kwargs)
        context = infer_kwargs["condition"]
        drop = torch.rand(len(context), generator=self.generator) < self.p
        if drop.any():
            context = context.clone()
            context[drop] = self.null.to(context.device)
        infer_kwargs["condition"] = context
        self.dropped += int(drop.sum())
        self.seen += len(drop)
        return images, target, args, infer_kwargs


def diffusion_scheduler(num_train_timesteps: int = 1000, prediction_type: str = "epsilon") -> Any:
    """The training noise schedule (MONAI ``DDPMScheduler``, linear betas); the sampler's DDIM uses the same."""
    from monai.networks.schedulers import DDPMScheduler

    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")
    return DDPMScheduler(num_train_timesteps=int(num_train_timesteps), prediction_type=prediction_type)


def diffusion_prepare_batch(
    model: nn.Module, scheduler: Any, null_prob: float = 0.1, seed: int = 0
) -> NullPromptDropout:
    """MONAI's diffusion ``prepare_batch`` for ``scheduler.prediction_type`` (noise and timestep drawn per
    step), wrapped in :class:`NullPromptDropout` with the model's null prompt."""
    from monai.engines.utils import DiffusionPrepareBatch, VPredictionPrepareBatch

    steps = int(scheduler.num_train_timesteps)
    base = (
        VPredictionPrepareBatch(scheduler, steps, condition_name="context")
        if scheduler.prediction_type == "v_prediction"
        else DiffusionPrepareBatch(num_train_timesteps=steps, condition_name="context")
    )
    return NullPromptDropout(base, model.null_context(1)[0], null_prob, seed=seed)


def latent_prompt_items(model: nn.Module, latents: torch.Tensor, prompts: Sequence[str]) -> list[dict]:
    """``[{"image": latent, "context": packed ids}]``: prompts tokenised once (over-long reports keep whole
    sentences; a warning says so)."""
    if latents.ndim != 4 or latents.shape[1] != model.latent_channels:
        raise ValueError(
            f"latents must be (N, {model.latent_channels}, h, w) for this UNet, got {tuple(latents.shape)}"
        )
    prompts = list(prompts)
    if len(prompts) != len(latents):
        raise ValueError(f"{len(prompts)} prompts for {len(latents)} latents: give one prompt per image")
    context = model.pack(prompts)
    return [{"image": latents[i].float(), "context": context[i]} for i in range(len(latents))]


def text_ldm_info(
    scheduler: Any, prepare: NullPromptDropout, trainer: Any = None, ema_decay: float | None = None
) -> dict[str, Any]:
    """What the sampler needs from training (scheduler settings) and what happened (null share, last loss)."""
    info: dict[str, Any] = {
        "num_train_timesteps": int(scheduler.num_train_timesteps),
        "prediction_type": str(scheduler.prediction_type),
        "null_prob": float(prepare.p),
        "null_share": prepare.dropped / max(1, prepare.seen),
    }
    if trainer is not None and trainer.state.output is not None:
        out = trainer.state.output
        out = out[0] if isinstance(out, list) else out
        info["final_loss"] = float(torch.as_tensor(out["loss"]).detach())
    if ema_decay is not None:
        info["ema_decay"] = float(ema_decay)
    return info


def save_text_ldm(path: str | Path, model: nn.Module, info: dict[str, Any], **extras: Any) -> Path:
    """The UNet (EMA weights) in the one checkpoint format, with ``info`` and ``extras`` (``image_size``,
    ``latent_shape``, ``autoencoder_scale_factor``) that :func:`medgen.inferers.text_ldm.load_text_ldm` checks."""
    from medgen.networks.utils import save_checkpoint

    model = getattr(model, "module", model)  # DDP
    saved = {**{k: v for k, v in info.items() if v is not None}, **extras}
    logger.info("text LDM: saved %s (%s)", path, saved)
    return save_checkpoint(path, model, **saved)


class SampleGridHandler:
    """Every ``interval`` epochs (and at the end), sample one image per prompt with ``model`` (the EMA weights)
    and write ``<output_dir>/samples_epoch_NNN.png``, prompts as titles; the tracking overlay logs the folder to
    MLflow, so each validation leaves its grid there.

    Args:
        model: the UNet to sample with (e.g. ``EMAHandler.ema_model``).
        autoencoder: the trained :class:`~medgen.networks.nets.latent_autoencoder.LatentAutoencoder`.
        scheduler: the training ``DDPMScheduler`` (a DDIM with its settings is made from it).
        prompts: report texts, one image each (a few: this runs during training).
        latent_shape: (C, h, w).
        steps, guidance, seed: sampling options.
    """

    def __init__(self, model, autoencoder, scheduler, prompts, latent_shape, output_dir, interval: int = 5,
                 steps: int = 20, guidance: float = 3.0, seed: int = 0) -> None:  # fmt: skip
        self.model, self.autoencoder, self.scheduler = model, autoencoder, scheduler
        self.prompts, self.latent_shape = list(prompts), tuple(int(s) for s in latent_shape)
        self.output_dir, self.interval = Path(output_dir), int(interval)
        self.steps, self.guidance, self.seed = int(steps), float(guidance), int(seed)
        self.written: list[Path] = []

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_COMPLETED(every=max(1, self.interval)), self)
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Any) -> None:
        from medgen.inferers.text_ldm import TextLatentDiffusionSampler
        from medgen.visualize.pyplot import pyplot

        epoch = int(engine.state.epoch)
        path = self.output_dir / f"samples_epoch_{epoch:03d}.png"
        if path in self.written:
            return
        model = getattr(self.model, "module", self.model)
        device = next(model.parameters()).device
        sampler = TextLatentDiffusionSampler.from_networks(
            self.autoencoder, model, self.scheduler.num_train_timesteps, self.scheduler.prediction_type,
            latent_shape=self.latent_shape, device=device,
        )  # fmt: skip
        images = sampler.generate(self.prompts, steps=self.steps, guidance=self.guidance, seed=self.seed)
        plt = pyplot()
        n = len(self.prompts)
        fig, axes = plt.subplots(1, n, figsize=(2.4 * n, 2.9), squeeze=False)
        for ax, img, prompt in zip(axes[0], images, self.prompts, strict=True):
            ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_title("\n".join(_wrap(prompt, 28, 3)), fontsize=6)
            ax.axis("off")
        fig.suptitle(
            f"epoch {epoch}: {self.steps} DDIM steps, guidance {self.guidance:g} (EMA weights)", fontsize=8
        )
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=90)
        plt.close(fig)
        self.written.append(path)
        logger.info("text LDM: sample grid %s", path)


def _wrap(text: str, width: int, lines: int) -> list[str]:
    import textwrap

    out = textwrap.wrap(text, width)
    return out[:lines] if len(out) <= lines else [*out[: lines - 1], out[lines - 1][: width - 3] + "..."]


def train_text_diffusion(
    model: nn.Module,
    latents: torch.Tensor,
    prompts: Sequence[str],
    epochs: int = 10,
    batch_size: int = 16,
    lr: float = 1e-4,
    null_prob: float = 0.1,
    prediction_type: str = "epsilon",
    num_train_timesteps: int = 1000,
    ema_decay: float | None = 0.999,
    seed: int = 0,
    device: str | torch.device = "cpu",
    save_path: str | Path | None = None,
    progress: bool = True,
    extras: dict[str, Any] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``model`` (a :class:`~medgen.networks.nets.text_ldm.TextConditionedUNet`) on scaled ``latents``
    (N, C, h, w) and their ``prompts``; returns ``(ema_or_trained_model, info)``.

    ``info``: the scheduler settings the sampler must use (``num_train_timesteps``, ``prediction_type``), the
    share of prompts replaced by the null prompt, the final loss. ``save_path``: the EMA model (or the model when
    ``ema_decay`` is None) in the one checkpoint format with those settings as extras, plus ``extras`` (plain
    values the sampler needs, e.g. ``image_size`` and ``latent_shape``).
    """
    from ignite.engine import Events
    from ignite.handlers import EMAHandler
    from monai.data import Dataset
    from monai.engines import SupervisedTrainer
    from monai.utils import set_determinism

    scheduler = diffusion_scheduler(num_train_timesteps, prediction_type)
    if ema_decay is not None and not 0.0 < ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in (0, 1) or None, got {ema_decay}")
    set_determinism(seed)
    device = torch.device(device)
    model = model.to(device)
    items = latent_prompt_items(model, latents, prompts)
    prepare = diffusion_prepare_batch(model, scheduler, null_prob, seed=seed)
    loader = torch.utils.data.DataLoader(
        Dataset(items), batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    trainer = SupervisedTrainer(
        device=device,
        max_epochs=epochs,
        train_data_loader=loader,
        network=model,
        optimizer=opt,
        loss_function=nn.MSELoss(),
        inferer=DiffusionModeInferer(scheduler, "crossattn"),  # type: ignore[arg-type]
        prepare_batch=prepare,
        train_handlers=[cosine_lr_handler(opt, epochs * len(loader), lr)],
        decollate=False,
    )
    ema = None
    if ema_decay is not None:
        ema = EMAHandler(model, momentum=1.0 - float(ema_decay))
        ema.attach(trainer, name="ema_momentum", event=Events.ITERATION_COMPLETED)
    if progress:
        from medgen.handlers.progress import attach_progress

        attach_progress(trainer, "text LDM UNet")
    trainer.run()
    out = copy.deepcopy(ema.ema_model if ema is not None else model).eval()
    info = text_ldm_info(scheduler, prepare, trainer, ema_decay)
    logger.info("text LDM: %s", info)
    if save_path is not None:
        save_text_ldm(save_path, out, info, **dict(extras or {}))
    return out, info
