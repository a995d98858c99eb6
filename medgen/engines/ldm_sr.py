"""Latent-diffusion super-resolution (the CompVis LDM x4 design) on MONAI generative networks, and its training.

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
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LDMSuperResolution", "RandomPatchPairs", "degrade", "train_ldm_sr"]

logger = logging.getLogger(__name__)


def degrade(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """HR (N, C, H, W) -> LR by area averaging (the degradation used for training and for HR-truth evaluation)."""
    if hr.shape[-1] % scale or hr.shape[-2] % scale:
        raise ValueError(f"degrade: HR size {tuple(hr.shape[-2:])} is not divisible by scale {scale}")
    return F.avg_pool2d(hr, scale)


class RandomPatchPairs(torch.utils.data.Dataset):
    """``length`` random (LR, HR) patch pairs cut from whole HR images (N, 1, H, W): item ``i`` is a ``patch``-px
    crop of a random image (a crop with std <= ``min_std``, i.e. flat background, is redrawn up to 10 times) as
    ``label`` and its :func:`degrade` as ``image``; reproducible per (``seed``, ``i``)."""

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
        return {"image": degrade(crop[None], self.scale)[0], "label": crop}


class LDMSuperResolution(nn.Module):
    """Autoencoder + LR-concat-conditioned diffusion UNet + latent scale, saved and loaded as one module.

    Args:
        scale: SR factor; a power of two (the autoencoder downsamples by it).
        ae_channels: autoencoder widths (one level more than ``log2(scale)``; multiples of ``norm_num_groups``).
        latent_channels: latent channels.
        unet_channels: diffusion UNet widths per level.
        residual: model ``HR - bicubic(LR)`` instead of HR (see module docstring).
        num_train_timesteps: DDPM training schedule length.
        prediction_type: what the UNet predicts, ``"v_prediction"`` (the velocity, Salimans & Ho 2022; trained
            with MONAI's ``VPredictionPrepareBatch``) or ``"epsilon"`` (the noise). In short CPU training
            v-prediction's DDIM samples were much closer to the HR than epsilon's after the same iterations
            (epsilon's x0 estimate divides the noise error by sqrt(alpha_bar), which is tiny at high noise).
    """

    def __init__(
        self,
        scale: int = 4,
        ae_channels: tuple[int, ...] | None = None,
        latent_channels: int = 4,
        unet_channels: tuple[int, ...] = (32, 64),
        norm_num_groups: int = 8,
        residual: bool = True,
        num_train_timesteps: int = 1000,
        prediction_type: str = "v_prediction",
    ) -> None:
        super().__init__()
        from monai.networks.nets import AutoencoderKL, DiffusionModelUNet

        levels = int(round(math.log2(scale)))
        if 2**levels != scale or levels < 1:
            raise ValueError(f"LDMSuperResolution: scale must be a power of two >= 2, got {scale}")
        ae_channels = tuple(ae_channels or (16,) + (32,) * levels)
        if len(ae_channels) != levels + 1:
            raise ValueError(
                f"LDMSuperResolution: ae_channels needs log2(scale)+1 = {levels + 1} entries for scale {scale}, "
                f"got {ae_channels}"
            )
        if prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(
                f"LDMSuperResolution: prediction_type must be 'epsilon' or 'v_prediction', got {prediction_type!r}"
            )
        self.config = {
            "ae_channels": list(ae_channels),
            "latent_channels": latent_channels,
            "unet_channels": list(unet_channels),
            "norm_num_groups": norm_num_groups,
            "num_train_timesteps": num_train_timesteps,
            "prediction_type": prediction_type,
        }
        self.prediction_type = prediction_type
        self.scale = int(scale)
        self.residual = bool(residual)
        self.num_train_timesteps = int(num_train_timesteps)
        self.autoencoder = AutoencoderKL(
            spatial_dims=2,
            in_channels=1,
            out_channels=1,
            channels=ae_channels,
            latent_channels=latent_channels,
            num_res_blocks=1,
            attention_levels=(False,) * len(ae_channels),
            norm_num_groups=norm_num_groups,
            with_encoder_nonlocal_attn=False,
            with_decoder_nonlocal_attn=False,
        )
        self.unet = DiffusionModelUNet(
            spatial_dims=2,
            in_channels=latent_channels + 1,
            out_channels=latent_channels,
            channels=tuple(unet_channels),
            attention_levels=(False,) * (len(unet_channels) - 1) + (True,),
            num_res_blocks=1,
            norm_num_groups=norm_num_groups,
            num_head_channels=unet_channels[-1],
        )
        self.register_buffer("latent_scale", torch.tensor(1.0))
        self.register_buffer("residual_std", torch.tensor(1.0))

    def target(self, hr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        """What the autoencoder reconstructs: the HR patch, or its residual over bicubic / ``residual_std``."""
        return (hr - self.upsample(lr)) / self.residual_std if self.residual else hr * 2 - 1

    def upsample(self, lr: torch.Tensor) -> torch.Tensor:
        return F.interpolate(lr, scale_factor=self.scale, mode="bicubic", align_corners=False)

    def condition(self, lr: torch.Tensor) -> torch.Tensor:
        """LR patch as UNet input channels, centred to [-1, 1]."""
        return lr * 2 - 1

    def decode(self, latents: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        """Latents -> HR patch in [0, 1]."""
        out = self.autoencoder.decode_stage_2_outputs(latents / self.latent_scale)
        out = out * self.residual_std + self.upsample(lr) if self.residual else (out + 1) / 2
        return out.clamp(0, 1)


class _ConcatDiffusionInferer:
    """``DiffusionInferer`` called in ``mode="concat"`` (``SupervisedTrainer`` passes no mode argument)."""

    def __init__(self, scheduler: Any) -> None:
        from monai.inferers import DiffusionInferer

        self.inferer = DiffusionInferer(scheduler)

    def __call__(self, inputs, network, *args, **kwargs):
        return self.inferer(inputs, network, *args, mode="concat", **kwargs)


def _autoencoder_loss(kl_weight: float):
    def loss(output: tuple[torch.Tensor, ...], target: torch.Tensor) -> torch.Tensor:
        recon, mu, sigma = output
        kl = 0.5 * (mu.pow(2) + sigma.pow(2) - torch.log(sigma.pow(2) + 1e-8) - 1).sum(dim=(1, 2, 3)).mean()
        return F.l1_loss(recon, target) + kl_weight * kl

    return loss


def _cosine(opt: torch.optim.Optimizer, iterations: int, lr: float) -> Any:
    from monai.handlers import LrScheduleHandler

    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, iterations), eta_min=lr * 1e-2)
    return LrScheduleHandler(sched, print_lr=False, epoch_level=False)


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
        loss_function=_autoencoder_loss(kl_weight),
        train_handlers=[_cosine(ae_opt, ae_epochs * len(ae_loader), ae_lr)],
        decollate=False,
    )
    attach_progress(ae_trainer, "LDM-SR autoencoder").run()
    ae.eval()
    with torch.no_grad():
        latents = torch.cat([ae.encode(target[i : i + 256])[0] for i in range(0, len(target), 256)])
        model.latent_scale.fill_(1.0 / latents.std().clamp_min(1e-6))
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
        inferer=_ConcatDiffusionInferer(scheduler),  # type: ignore[arg-type]
        prepare_batch=prepare,
        train_handlers=[_cosine(unet_opt, unet_epochs * len(unet_loader), lr)],
        decollate=False,
    )
    attach_progress(unet_trainer, "LDM-SR diffusion UNet").run()
    model.eval()
    if save_path is not None:
        save_path = Path(save_path)
        save_path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "state_dict": model.state_dict(),
                "scale": model.scale,
                "residual": model.residual,
                "model_kwargs": model.config,
            },
            save_path,
        )
    return model
