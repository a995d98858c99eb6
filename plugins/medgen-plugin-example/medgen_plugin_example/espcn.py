"""ESPCN (Shi et al., CVPR 2016): feature extraction at low resolution, sub-pixel convolution to upscale."""

from __future__ import annotations

import torch
from torch import nn


class ESPCN(nn.Module):
    """1-channel ESPCN super-resolution network.

    Args:
        scale: upscaling factor (2, 3 or 4).
        width: channels of the first layer (the second has half).
        in_channels: image channels in and out.
    """

    def __init__(self, scale: int = 2, width: int = 32, in_channels: int = 1) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"ESPCN scale must be 2, 3 or 4, got {scale}")
        self.scale = scale
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 5, padding=2),
            nn.Tanh(),
            nn.Conv2d(width, width // 2, 3, padding=1),
            nn.Tanh(),
        )
        self.tail = nn.Sequential(
            nn.Conv2d(width // 2, in_channels * scale**2, 3, padding=1), nn.PixelShuffle(scale)
        )

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.body(x)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # residual on a nearest upsampling keeps the untrained net close to the identity
        base = nn.functional.interpolate(x, scale_factor=self.scale, mode="nearest")
        return base + self.tail(self.body(x))
