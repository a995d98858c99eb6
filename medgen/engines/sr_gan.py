"""Adversarial SR training (Swift-SRGAN style) as a small subclass of MONAI's :class:`~monai.engines.Trainer`.

Why not :class:`monai.engines.GanTrainer`: it is built for unconditional generation. Its generator input is a
latent drawn by ``g_prepare_batch(num_latents, latent_size, ...)`` and its ``g_loss_function(g_output)`` sees
only the fake images, so neither the LR input nor the HR target reaches the generator loss; SR needs both
(pixel and content losses against HR). This class keeps GanTrainer's structure (D step(s), then G step) and
its ``GanKeys`` outputs, adds ``network``/``optimizer`` aliases so MONAI's checkpoint and evaluation
handlers treat the generator like any trained network.
"""

from __future__ import annotations

from typing import Any

import torch
from monai.engines import Trainer
from monai.utils.enums import CommonKeys as Keys
from monai.utils.enums import GanKeys
from torch import nn

from medgen.engines.sr import SRPrepareBatch


class SRGANTrainer(Trainer):
    """Conditional GAN trainer for SR: generator ``G(lr)``, discriminator on HR vs ``G(lr)``.

    Generator loss: ``pixel_weight * pixel(G(lr), hr) + content_weight * content(G(lr), hr) +
    adversarial_weight * adv``; discriminator loss: ``adversarial.discriminator_loss(D(hr), D(G(lr)))``.

    Args:
        device: torch device.
        max_epochs: epochs to run.
        train_data_loader: yields dicts with ``lr``/``hr`` (see :class:`SRPrepareBatch`).
        generator, discriminator: the two networks.
        g_optimizer, d_optimizer: their optimizers.
        pixel_loss: e.g. ``PixelLoss("l1")``.
        adversarial_loss: :class:`medgen.losses.sr.AdversarialLoss` (standard or relativistic).
        content_loss: optional :class:`medgen.losses.content.ContentLoss`.
        pixel_weight, content_weight, adversarial_weight: loss weights (Swift-SRGAN: 1, 6e-3, 1e-3).
        d_train_steps: discriminator steps per iteration.
        epoch_length, train_handlers, **kwargs: as for MONAI trainers.
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Any,
        generator: nn.Module,
        discriminator: nn.Module,
        g_optimizer: torch.optim.Optimizer,
        d_optimizer: torch.optim.Optimizer,
        pixel_loss: nn.Module,
        adversarial_loss: nn.Module,
        content_loss: nn.Module | None = None,
        pixel_weight: float = 1.0,
        content_weight: float = 6e-3,
        adversarial_weight: float = 1e-3,
        d_train_steps: int = 1,
        epoch_length: int | None = None,
        train_handlers: list | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            device=torch.device(device),
            max_epochs=max_epochs,
            data_loader=train_data_loader,
            epoch_length=epoch_length,
            prepare_batch=SRPrepareBatch(),
            handlers=train_handlers,
            **kwargs,
        )
        self.g_network, self.d_network = generator, discriminator
        self.network, self.optimizer = generator, g_optimizer  # what CheckpointSaver / evaluators look for
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.pixel_loss, self.adversarial_loss, self.content_loss = pixel_loss, adversarial_loss, content_loss
        self.weights = (float(pixel_weight), float(content_weight), float(adversarial_weight))
        self.d_train_steps = int(d_train_steps)

    def _iteration(self, engine: SRGANTrainer, batchdata: dict) -> dict[str, Any]:
        if batchdata is None:
            raise ValueError("SRGANTrainer: must provide batch data for the current iteration.")
        lr, hr = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs)
        g, d = engine.g_network.train(), engine.d_network.train()
        fake = g(lr)

        d_total = 0.0
        for _ in range(engine.d_train_steps):
            engine.d_optimizer.zero_grad(set_to_none=True)
            d_loss = engine.adversarial_loss.discriminator_loss(d(hr), d(fake.detach()))
            d_loss.backward()
            engine.d_optimizer.step()
            d_total += d_loss.item()

        w_pix, w_content, w_adv = engine.weights
        engine.g_optimizer.zero_grad(set_to_none=True)
        d.requires_grad_(False)  # no discriminator gradients from the generator step
        fake_logits = d(fake)
        real_logits = d(hr).detach() if engine.adversarial_loss.mode == "relativistic" else None
        d.requires_grad_(True)
        g_loss = w_pix * engine.pixel_loss(fake, hr) + w_adv * engine.adversarial_loss(
            fake_logits, real_logits
        )
        if engine.content_loss is not None and w_content:
            g_loss = g_loss + w_content * engine.content_loss(fake, hr)
        g_loss.backward()
        engine.g_optimizer.step()
        return {
            Keys.IMAGE: lr,
            Keys.LABEL: hr,
            Keys.PRED: fake.detach(),
            Keys.LOSS: g_loss.detach(),
            GanKeys.GLOSS: g_loss.item(),
            GanKeys.DLOSS: d_total / max(engine.d_train_steps, 1),
        }
