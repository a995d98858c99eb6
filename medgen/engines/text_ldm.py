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

__all__ = ["NullPromptDropout", "train_text_diffusion"]

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
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``model`` (a :class:`~medgen.networks.nets.text_ldm.TextConditionedUNet`) on scaled ``latents``
    (N, C, h, w) and their ``prompts``; returns ``(ema_or_trained_model, info)``.

    ``info``: the scheduler settings the sampler must use (``num_train_timesteps``, ``prediction_type``), the
    share of prompts replaced by the null prompt, the final loss. ``save_path``: the EMA model (or the model when
    ``ema_decay`` is None) in the one checkpoint format with those settings as extras.
    """
    from ignite.engine import Events
    from ignite.handlers import EMAHandler
    from monai.data import Dataset
    from monai.engines import SupervisedTrainer
    from monai.engines.utils import DiffusionPrepareBatch, VPredictionPrepareBatch
    from monai.networks.schedulers import DDPMScheduler
    from monai.utils import set_determinism

    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")
    if latents.ndim != 4 or latents.shape[1] != model.latent_channels:
        raise ValueError(
            f"latents must be (N, {model.latent_channels}, h, w) for this UNet, got {tuple(latents.shape)}"
        )
    prompts = list(prompts)
    if len(prompts) != len(latents):
        raise ValueError(f"{len(prompts)} prompts for {len(latents)} latents: give one prompt per image")
    if ema_decay is not None and not 0.0 < ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in (0, 1) or None, got {ema_decay}")
    set_determinism(seed)
    device = torch.device(device)
    model = model.to(device)
    context = model.pack(
        prompts
    )  # tokenised once; over-long reports keep whole sentences (a warning says so)
    scheduler = DDPMScheduler(num_train_timesteps=num_train_timesteps, prediction_type=prediction_type)
    base = (
        VPredictionPrepareBatch(scheduler, num_train_timesteps, condition_name="context")
        if prediction_type == "v_prediction"
        else DiffusionPrepareBatch(num_train_timesteps=num_train_timesteps, condition_name="context")
    )
    prepare = NullPromptDropout(base, model.null_context(1)[0], null_prob, seed=seed)
    items = [{"image": latents[i].float(), "context": context[i]} for i in range(len(latents))]
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
    info = {
        "num_train_timesteps": int(num_train_timesteps),
        "prediction_type": prediction_type,
        "null_prob": float(null_prob),
        "null_share": prepare.dropped / max(1, prepare.seen),
        "final_loss": float(torch.as_tensor(trainer.state.output["loss"]).detach()),
        "ema_decay": ema_decay,
    }
    logger.info("text LDM: %s", info)
    if save_path is not None:
        from medgen.networks.utils import save_checkpoint

        save_checkpoint(save_path, out, **{k: v for k, v in info.items() if v is not None})
    return out, info
