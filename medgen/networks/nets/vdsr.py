"""VDSR (Kim et al., 2016): a deep plain CNN on the bicubic-upsampled image, learning the residual."""

from __future__ import annotations

import torch
from torch import nn

from medgen.networks.blocks.sr import SRNetwork, bicubic_upsample, check_scale, conv3x3, scale_last_conv_
from medgen.networks.utils import build, sr_factory


class VDSR(SRNetwork):
    """VDSR: ``depth`` 3x3 conv layers of ``width`` channels at HR size, output added to the bicubic input.

    Args:
        scale: upscaling factor (2, 3 or 4).
        in_channels: image channels.
        width: channels of the hidden layers (original 64).
        depth: total number of conv layers including the first and last (original 20, at least 2).
    """

    def __init__(self, scale: int = 4, in_channels: int = 1, width: int = 64, depth: int = 20) -> None:
        super().__init__(check_scale(scale, network="VDSR"), in_channels)
        if depth < 2:
            raise ValueError(f"VDSR: depth={depth} must be at least 2 (first and last conv).")
        self.head = nn.Sequential(conv3x3(in_channels, width), nn.ReLU(inplace=True))
        self.body = nn.ModuleList(
            nn.Sequential(conv3x3(width, width), nn.ReLU(inplace=True)) for _ in range(depth - 2)
        )
        self.tail = conv3x3(width, in_channels)
        scale_last_conv_(self.tail)

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        self.check_input(x)
        up = bicubic_upsample(x, self.scale)
        feats = [self.head(up)]
        for layer in self.body:
            feats.append(layer(feats[-1]))
        return self.tail(feats[-1]) + up, feats


@sr_factory()
def vdsr(**kwargs) -> VDSR:
    """VDSR with 20 layers of 64 channels (about 665K parameters)."""
    return build("vdsr", VDSR, dict(scale=4, in_channels=1, width=64, depth=20), kwargs)
