"""Latent-diffusion super-resolution network (the CompVis LDM x4 design) on MONAI generative networks.

An ``AutoencoderKL`` whose downsampling factor equals the SR scale maps an HR patch to a latent with the *LR*
patch's spatial size; a ``DiffusionModelUNet`` denoises that latent with the LR patch concatenated as extra input
channels. With ``residual=True`` both work on ``(HR - bicubic(LR)) / residual_std`` (reasons in
:mod:`medgen.engines.ldm_sr`, which trains it; :class:`medgen.inferers.region_sr.LatentDiffusionBackend` samples it).
Pure ``nn.Module``: no training logic here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LDMSuperResolution"]


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
            "residual": bool(residual),
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
