"""RDN, the Residual Dense Network (Zhang et al., 2018), working at LR size with sub-pixel upsampling.

medgen adds a bicubic skip around the whole network (``residual_upsample=True``, like BasicSR's
SRVGGNetCompact adds a nearest-neighbour skip): the network learns only the detail bicubic misses, which makes
short CPU runs converge; ``residual_upsample=False`` is the original.
"""

from __future__ import annotations

import torch
from torch import nn

from medgen.networks.blocks.sr import (
    PixelShuffleUpsampler,
    SRNetwork,
    bicubic_upsample,
    check_scale,
    conv3x3,
    scale_last_conv_,
)
from medgen.networks.utils import build, sr_factory


class ResidualDenseBlock(nn.Module):
    """``num_layers`` densely connected 3x3 conv+ReLU layers, 1x1 local fusion, local residual."""

    def __init__(self, channels: int, growth: int, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(conv3x3(channels + i * growth, growth), nn.ReLU(inplace=True))
            for i in range(num_layers)
        )
        self.fuse = nn.Conv2d(channels + num_layers * growth, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for layer in self.layers:
            feats.append(layer(torch.cat(feats, 1)))
        return x + self.fuse(torch.cat(feats, 1))


class RDN(SRNetwork):
    """Residual Dense Network.

    Args:
        scale: upscaling factor (2, 3 or 4).
        in_channels: image channels.
        num_features: width G0 of the block inputs/outputs (original 64).
        growth: growth rate G inside each block (original 64).
        num_blocks: number of residual dense blocks D (original 16).
        num_layers: conv layers per block C (original 8).
        residual_upsample: add the bicubic upsampled input to the output.
    """

    def __init__(
        self,
        scale: int = 4,
        in_channels: int = 1,
        num_features: int = 64,
        growth: int = 32,
        num_blocks: int = 8,
        num_layers: int = 6,
        residual_upsample: bool = True,
    ) -> None:
        super().__init__(check_scale(scale, network="RDN"), in_channels)
        self.residual_upsample = residual_upsample
        self.sfe1 = conv3x3(in_channels, num_features)
        self.sfe2 = conv3x3(num_features, num_features)
        self.blocks = nn.ModuleList(
            ResidualDenseBlock(num_features, growth, num_layers) for _ in range(num_blocks)
        )
        self.gff = nn.Sequential(
            nn.Conv2d(num_blocks * num_features, num_features, 1), conv3x3(num_features, num_features)
        )
        self.upsample = PixelShuffleUpsampler(num_features, self.scale)
        self.tail = conv3x3(num_features, in_channels)
        if residual_upsample:
            scale_last_conv_(self.tail)

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        self.check_input(x)
        f_1 = self.sfe1(x)
        h = self.sfe2(f_1)
        feats = []
        for block in self.blocks:
            h = block(h)
            feats.append(h)
        fused = self.gff(torch.cat(feats, 1)) + f_1
        feats.append(fused)
        out = self.tail(self.upsample(fused))
        if self.residual_upsample:
            out = out + bicubic_upsample(x, self.scale)
        return out, feats


_RDN = dict(
    scale=4, in_channels=1, num_features=64, growth=32, num_blocks=8, num_layers=6, residual_upsample=True
)


@sr_factory()
def rdn(**kwargs) -> RDN:
    """RDN teacher: G0=64, G=32, D=8 blocks of C=6 layers (about 2.5M parameters)."""
    return build("rdn", RDN, dict(_RDN), kwargs)


@sr_factory()
def rdn_half(**kwargs) -> RDN:
    """RDN student with half the teacher's width (G0=32, G=16) and half its depth (D=4, C=3): about 191K parameters, 7.5% of `rdn`."""
    return build("rdn_half", RDN, dict(_RDN, num_features=32, growth=16, num_blocks=4, num_layers=3), kwargs)
