"""Training of latent-diffusion super-resolution (:class:`medgen.networks.nets.ldm_sr.LDMSuperResolution`, the
CompVis LDM x4 design on MONAI generative networks), the area degradation and random (LR, HR) patch pairs.

Design (Rombach et al. 2022, LDM-SR): an ``AutoencoderKL`` whose downsampling factor equals the SR scale maps an
HR patch to a latent with the *LR* patch's spatial size; a ``DiffusionModelUNet`` denoises that latent with the
LR patch concatenated as extra input channels (conditioning by concatenation); DDIM sampling; decode.

One change for short CPU training, switchable with ``residual=False``: the autoencoder and the diffusion model work
on the residual ``HR - bicubic(LR)`` (as SR3/ResDiff-style models do) so an under-trained model degrades towards
bicubic rather than below it. The residual is divided by its training-set standard deviation (``residual_std``,
a buffer saved with the model; about 0.018 on the 16x-dose phantom): unscaled, the autoencoder's output noise at
initialisation is larger than the whole residual and a few hundred iterations left its reconstruction below
bicubic; scaled, the same iterations reconstruct it well above (the benchmark prints this "autoencoder ceiling").
Both stages train with MONAI's ``SupervisedTrainer`` and a per-iteration cosine learning-rate decay
(``LrScheduleHandler``): stage 1 the autoencoder (L1 + KL; optionally on random ``ae_patch`` crops, it is fully
convolutional), stage 2 the UNet on cached latents with ``DiffusionPrepareBatch`` (epsilon) or
``VPredictionPrepareBatch`` (v) + ``DiffusionInferer`` in concat mode.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medgen.engines.autoencoder import autoencoder_loss, cosine_lr_handler, fit_scale_factor
from medgen.engines.diffusion import DiffusionModeInferer
from medgen.engines.sr import HR_KEY, LR_KEY
from medgen.networks.nets.ldm_sr import LDMSuperResolution
from medgen.networks.utils import save_checkpoint

__all__ = ["RandomPatchPairs", "degrade", "train_ldm_sr"]

logger = logging.getLogger(__name__)


def degrade(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """HR (N, C, H, W) -> LR by area averaging (the degradation used for training and for HR-truth evaluation)."""
    if hr.shape[-1] % scale or hr.shape[-2] % scale:
        raise ValueError(f"degrade: HR size {tuple(hr.shape[-2:])} is not divisible by scale {scale}")
    return F.avg_pool2d(hr, scale)


class RandomPatchPairs(torch.utils.data.Dataset):
    """``length`` random (LR, HR) patch pairs cut from whole HR images (N, 1, H, W): item ``i`` is a ``patch``-px
    crop of a random image (a crop with std <= ``min_std``, i.e. flat background, is redrawn up to 10 times) as
    ``"hr"`` and its :func:`degrade` as ``"lr"`` (the keys of :class:`medgen.engines.sr.SRPrepareBatch`, so the
    dataset feeds :func:`medgen.engines.sr.create_sr_trainer`); reproducible per (``seed``, ``i``)."""

    def __init__(
        self, hr: torch.Tensor, patch: int, scale: int, length: int, seed: int = 0, min_std: float = 0.02
    ) -> None:
        if hr.ndim != 4 or hr.shape[1] != 1:
            raise ValueError(f"RandomPatchPairs: hr must be (N, 1, H, W), got {tuple(hr.shape)}")
        if patch % scale or patch > min(hr.shape[-2:]):
            raise ValueError(
                f"RandomPatchPairs: patch {patch} must be a multiple of scale {scale} and at most the HR size "
                f"{tuple(hr.shape[-2:])}"
            )
        self.hr, self.patch, self.scale, self.length, self.seed = hr.float(), patch, scale, length, seed
        self.min_std = min_std

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        import numpy as np

        rng = np.random.default_rng([self.seed, i])
        h, w = self.hr.shape[-2:]
        for _ in range(10):
            k = int(rng.integers(len(self.hr)))
            y, x = (int(v) for v in rng.integers(0, (h - self.patch + 1, w - self.patch + 1)))
            crop = self.hr[k, :, y : y + self.patch, x : x + self.patch]
            if crop.std() > self.min_std:
                break
        return {LR_KEY: degrade(crop[None], self.scale)[0], HR_KEY: crop}


def train_ldm_sr(
    hr_patches: torch.Tensor,
    scale: int = 4,
    ae_epochs: int = 20,
    unet_epochs: int = 40,
    batch_size: int = 32,
    lr: float = 2e-3,
    kl_weight: float = 1e-6,
    seed: int = 0,
    device: str | torch.device = "cpu",
    save_path: str | Path | None = None,
    model: LDMSuperResolution | None = None,
    ae_lr: float = 1e-3,
    ae_patch: int | None = None,
) -> LDMSuperResolution:
    """Train an :class:`LDMSuperResolution` on HR patches (N, 1, H, W) in [0, 1]; LR inputs by :func:`degrade`.

    ``ae_epochs`` / ``unet_epochs`` are passes over the patches (``N / batch_size`` iterations each); both stages
    decay their learning rate (``ae_lr``, ``lr``) to 1% with a per-iteration cosine. ``ae_patch`` trains the
    (fully convolutional) autoencoder on random crops of that size (4x cheaper at half the side).
    Returns the trained model in eval mode (also written to ``save_path`` when given).
    """
    from monai.data import Dataset
    from monai.engines import SupervisedTrainer
    from monai.engines.utils import DiffusionPrepareBatch, VPredictionPrepareBatch
    from monai.networks.schedulers import DDPMScheduler
    from monai.transforms import RandSpatialCropd
    from monai.utils import set_determinism

    from medgen.handlers.progress import attach_progress

    if hr_patches.ndim != 4 or hr_patches.shape[1] != 1:
        raise ValueError(f"train_ldm_sr: hr_patches must be (N, 1, H, W), got {tuple(hr_patches.shape)}")
    if ae_patch is not None and not 0 < ae_patch <= min(hr_patches.shape[-2:]):
        raise ValueError(
            f"train_ldm_sr: ae_patch must be in (0, {min(hr_patches.shape[-2:])}] (the patch size) or None, "
            f"got {ae_patch}"
        )
    set_determinism(seed)
    model = (model or LDMSuperResolution(scale=scale)).to(device)
    hr = hr_patches.float().to(device)
    lr_img = degrade(hr, model.scale)
    if model.residual:
        with torch.no_grad():
            model.residual_std.fill_(float((hr - model.upsample(lr_img)).std().clamp_min(1e-6)))
    with torch.no_grad():
        target = model.target(hr, lr_img)
    gen = torch.Generator().manual_seed(seed)

    def loader(data: dict[str, torch.Tensor], transform: Any = None) -> torch.utils.data.DataLoader:
        items = [{k: v[i] for k, v in data.items()} for i in range(len(next(iter(data.values()))))]
        return torch.utils.data.DataLoader(
            Dataset(items, transform), batch_size=batch_size, shuffle=True, generator=gen
        )

    # stage 1: autoencoder (L1 + small KL), target = HR residual / residual_std
    ae = model.autoencoder
    crop = RandSpatialCropd(["image", "label"], (ae_patch, ae_patch), random_size=False) if ae_patch else None
    if crop is not None:
        crop.set_random_state(seed)
    ae_loader = loader({"image": target, "label": target}, crop)
    ae_opt = torch.optim.Adam(ae.parameters(), lr=ae_lr)
    ae_trainer = SupervisedTrainer(
        device=torch.device(device),
        max_epochs=ae_epochs,
        train_data_loader=ae_loader,
        network=ae,
        optimizer=ae_opt,
        loss_function=autoencoder_loss(kl_weight),
        train_handlers=[cosine_lr_handler(ae_opt, ae_epochs * len(ae_loader), ae_lr)],
        decollate=False,
    )
    attach_progress(ae_trainer, "LDM-SR autoencoder").run()
    ae.eval()
    with torch.no_grad():
        latents = torch.cat([ae.encode(target[i : i + 256])[0] for i in range(0, len(target), 256)])
        model.latent_scale.fill_(fit_scale_factor(lambda b: b, latents, batch_size=256))
        latents = latents * model.latent_scale

    # stage 2: diffusion UNet on cached latents, LR concatenated
    scheduler = DDPMScheduler(
        num_train_timesteps=model.num_train_timesteps, prediction_type=model.prediction_type
    )
    prepare = (
        VPredictionPrepareBatch(scheduler, model.num_train_timesteps, condition_name="lr")
        if model.prediction_type == "v_prediction"
        else DiffusionPrepareBatch(num_train_timesteps=model.num_train_timesteps, condition_name="lr")
    )
    unet_loader = loader({"image": latents, "lr": model.condition(lr_img)})
    unet_opt = torch.optim.Adam(model.unet.parameters(), lr=lr)
    unet_trainer = SupervisedTrainer(
        device=torch.device(device),
        max_epochs=unet_epochs,
        train_data_loader=unet_loader,
        network=model.unet,
        optimizer=unet_opt,
        loss_function=nn.MSELoss(),
        inferer=DiffusionModeInferer(scheduler, "concat"),  # type: ignore[arg-type]
        prepare_batch=prepare,
        train_handlers=[cosine_lr_handler(unet_opt, unet_epochs * len(unet_loader), lr)],
        decollate=False,
    )
    attach_progress(unet_trainer, "LDM-SR diffusion UNet").run()
    model.eval()
    if save_path is not None:
        save_checkpoint(
            save_path, model
        )  # arch, scale and config (with ``residual``) travel with the weights
    return model
