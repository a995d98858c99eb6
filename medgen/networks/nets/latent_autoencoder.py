"""The latent autoencoder of the text-to-X-ray LDM: MONAI ``AutoencoderKL`` with its latent scale factor.

``LatentAutoencoder`` is ``monai.networks.nets.AutoencoderKL`` plus a ``scale_factor`` buffer (1 / std of the
training latents, Rombach et al. 2022; fitted by :func:`medgen.engines.autoencoder.fit_scale_factor`). The buffer is
part of the state dict, so the one checkpoint format (:func:`medgen.networks.utils.save_checkpoint`) carries it
and :func:`~medgen.networks.utils.load_checkpoint` restores it: a sampler never runs with a wrong factor (which
gives noise-like samples).

Image convention: images are (N, 1, H, W) in [0, 1]; the autoencoder works in [-1, 1] (the diffusion schedulers
clip there). :meth:`LatentAutoencoder.encode_images` / :meth:`~LatentAutoencoder.decode_latents` do the mapping and
the scaling, so callers never handle either.
"""

from __future__ import annotations

from typing import Any

import torch

from medgen.networks.utils import build

__all__ = ["LatentAutoencoder", "cxr_ldm_autoencoder"]


def _base() -> type:
    from monai.networks.nets import AutoencoderKL

    return AutoencoderKL


class LatentAutoencoder(torch.nn.Module):
    """``AutoencoderKL`` (``self.vae``) with a ``scale_factor`` buffer and [0, 1] <-> scaled-latent helpers.

    Args:
        channels: per-level widths; ``len(channels) - 1`` downsamplings (4 levels: x8 down).
        latent_channels: channels of the latent (the seed system: 8).
        num_res_blocks: residual blocks per level.
        attention_levels: self-attention per level (off by default: cost on CPU).
        norm_num_groups: GroupNorm groups (must divide every width).
    """

    def __init__(
        self,
        channels: tuple[int, ...] = (64, 128, 256, 256),
        latent_channels: int = 8,
        num_res_blocks: int = 2,
        attention_levels: tuple[bool, ...] | None = None,
        norm_num_groups: int = 32,
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if len(channels) < 2:
            raise ValueError(f"LatentAutoencoder: channels needs at least two levels, got {channels}")
        bad = [c for c in channels if c % int(norm_num_groups)]
        if bad:
            raise ValueError(
                f"LatentAutoencoder: norm_num_groups={norm_num_groups} must divide every width in channels={channels}"
            )
        levels = tuple(attention_levels) if attention_levels is not None else (False,) * len(channels)
        if len(levels) != len(channels):
            raise ValueError(
                f"LatentAutoencoder: attention_levels has {len(levels)} entries for {len(channels)} levels"
            )
        self.vae = _base()(
            spatial_dims=2,
            in_channels=1,
            out_channels=1,
            channels=channels,
            latent_channels=int(latent_channels),
            num_res_blocks=int(num_res_blocks),
            attention_levels=levels,
            norm_num_groups=int(norm_num_groups),
            with_encoder_nonlocal_attn=False,
            with_decoder_nonlocal_attn=False,
        )
        self.latent_channels = int(latent_channels)
        self.downsample = 2 ** (len(channels) - 1)
        self.register_buffer("scale_factor", torch.tensor(1.0))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(reconstruction, z_mu, z_sigma)`` of ``x`` in the model range [-1, 1] (what the KL loss needs)."""
        return self.vae(x)

    def check_size(self, images: torch.Tensor, what: str = "images") -> None:
        if images.ndim != 4 or images.shape[1] != 1:
            raise ValueError(f"LatentAutoencoder: {what} must be (N, 1, H, W), got {tuple(images.shape)}")
        h, w = images.shape[-2:]
        if h % self.downsample or w % self.downsample:
            raise ValueError(
                f"LatentAutoencoder: {what} of {h}x{w} px are not divisible by the x{self.downsample} "
                f"downsampling; resize or crop them to a multiple of {self.downsample}"
            )

    @staticmethod
    def to_model_range(images01: torch.Tensor) -> torch.Tensor:
        return images01 * 2.0 - 1.0

    @staticmethod
    def to_image_range(x: torch.Tensor) -> torch.Tensor:
        return ((x + 1.0) / 2.0).clamp(0.0, 1.0)

    def encode_images(self, images01: torch.Tensor) -> torch.Tensor:
        """Scaled latents (the posterior mean times ``scale_factor``) of images in [0, 1]."""
        self.check_size(images01)
        z_mu, _ = self.vae.encode(self.to_model_range(images01))
        return z_mu * self.scale_factor

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] from scaled latents (divided by ``scale_factor`` first)."""
        return self.to_image_range(self.vae.decode(latents / self.scale_factor))

    def example_inputs(self, size: int = 64) -> tuple[torch.Tensor]:
        """One image in the model range, for tracing and ``medgen verify``."""
        return (torch.rand(1, 1, size, size) * 2.0 - 1.0,)

    def latent_shape(self, size: int) -> tuple[int, int, int]:
        """(C, h, w) of the latent of a ``size`` x ``size`` image."""
        if size % self.downsample:
            raise ValueError(f"image size {size} is not a multiple of the x{self.downsample} downsampling")
        return (self.latent_channels, size // self.downsample, size // self.downsample)


def cxr_ldm_autoencoder(**kwargs: Any) -> LatentAutoencoder:
    """The text-to-X-ray LDM's autoencoder; defaults are the seed system's (8 latent channels, x8 down)."""
    defaults = dict(
        channels=(64, 128, 256, 256),
        latent_channels=8,
        num_res_blocks=2,
        attention_levels=None,
        norm_num_groups=32,
    )
    return build("cxr_ldm_autoencoder", LatentAutoencoder, defaults, kwargs)
