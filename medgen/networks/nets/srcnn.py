"""SRCNN (Dong et al., 2014): upsample-first super-resolution with three convolutions.

The LR image is upsampled bicubically inside ``forward``; the convolutions then work at HR size. medgen adds
the bicubic image back (``residual=True``, as VDSR does) so a short training run starts at the bicubic
baseline instead of having to relearn the identity; ``residual=False`` gives the original formulation.
"""

from __future__ import annotations

import torch
from torch import nn

from medgen.networks.blocks.sr import SRNetwork, bicubic_upsample, check_scale, scale_last_conv_
from medgen.networks.utils import build, sr_factory


class SRCNN(SRNetwork):
    """SRCNN with adjustable width (first-layer channels; the middle layers use half) and depth.

    Args:
        scale: upscaling factor (2, 3 or 4).
        in_channels: image channels (1 for radiographs).
        width: channels of the 9x9 patch-extraction layer (original 64).
        depth: number of 5x5 non-linear mapping layers (original 1).
        residual: add the bicubic upsampled input to the output.
    """

    def __init__(
        self, scale: int = 4, in_channels: int = 1, width: int = 64, depth: int = 1, residual: bool = True
    ) -> None:
        super().__init__(check_scale(scale, network="SRCNN"), in_channels)
        self.residual = residual
        mid = max(width // 2, 1)
        self.extract = nn.Sequential(nn.Conv2d(in_channels, width, 9, padding=4), nn.ReLU(inplace=True))
        layers = []
        for i in range(depth):
            layers.append(
                nn.Sequential(nn.Conv2d(width if i == 0 else mid, mid, 5, padding=2), nn.ReLU(True))
            )
        self.mapping = nn.ModuleList(layers)
        self.reconstruct = nn.Conv2d(mid if depth else width, in_channels, 5, padding=2)
        if residual:
            scale_last_conv_(self.reconstruct)

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        self.check_input(x)
        up = bicubic_upsample(x, self.scale)
        feats = [self.extract(up)]
        for layer in self.mapping:
            feats.append(layer(feats[-1]))
        out = self.reconstruct(feats[-1])
        return (out + up if self.residual else out), feats


@sr_factory()
def srcnn(**kwargs) -> SRCNN:
    """SRCNN 9-5-5 with 64/32 channels (about 57K parameters)."""
    return build("srcnn", SRCNN, dict(scale=4, in_channels=1, width=64, depth=1, residual=True), kwargs)
