"""SRDenseNet (Tong et al., 2017): dense blocks with dense skip connections, deconvolution upsampling.

As in the other LR-space nets of the zoo, a bicubic skip around the network (``residual_upsample=True``) lets
short runs start from the bicubic baseline; ``residual_upsample=False`` is the original.
"""

from __future__ import annotations

import torch
from torch import nn

from medgen.networks.blocks.sr import SRNetwork, bicubic_upsample, check_scale, conv3x3, scale_last_conv_
from medgen.networks.utils import build, sr_factory


class DenseBlock(nn.Module):
    """``num_layers`` 3x3 conv+ReLU layers, each seeing all earlier outputs; returns their concatenation."""

    def __init__(self, in_channels: int, growth: int, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(conv3x3(in_channels + i * growth, growth), nn.ReLU(inplace=True))
            for i in range(num_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for layer in self.layers:
            feats.append(layer(torch.cat(feats, 1)))
        return torch.cat(feats[1:], 1)


class SRDenseNet(SRNetwork):
    """SRDenseNet (the "all skip connections" variant).

    Args:
        scale: upscaling factor, 2 or 4 (x2 deconvolution stages).
        in_channels: image channels.
        growth: growth rate per layer (original 16); each block outputs ``growth * num_layers`` channels.
        num_layers: layers per dense block (original 8).
        num_blocks: dense blocks (original 8).
        bottleneck: channels after the 1x1 bottleneck (original 256).
        residual_upsample: add the bicubic upsampled input to the output.
    """

    def __init__(
        self,
        scale: int = 4,
        in_channels: int = 1,
        growth: int = 16,
        num_layers: int = 8,
        num_blocks: int = 8,
        bottleneck: int = 256,
        residual_upsample: bool = True,
    ) -> None:
        super().__init__(check_scale(scale, (2, 4), network="SRDenseNet"), in_channels)
        self.residual_upsample = residual_upsample
        block_ch = growth * num_layers
        self.head = nn.Sequential(conv3x3(in_channels, block_ch), nn.ReLU(inplace=True))
        self.blocks = nn.ModuleList(DenseBlock(block_ch, growth, num_layers) for _ in range(num_blocks))
        self.bottleneck = nn.Sequential(nn.Conv2d(block_ch * (num_blocks + 1), bottleneck, 1), nn.ReLU(True))
        stages = []
        for _ in range({2: 1, 4: 2}[self.scale]):
            stages += [
                nn.ConvTranspose2d(bottleneck, bottleneck, 4, stride=2, padding=1),
                nn.ReLU(inplace=True),
            ]
        self.deconv = nn.Sequential(*stages)
        self.tail = conv3x3(bottleneck, in_channels)
        if residual_upsample:
            scale_last_conv_(self.tail)

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        self.check_input(x)
        h = self.head(x)
        feats = [h]
        for block in self.blocks:
            feats.append(block(feats[-1]))
        fused = self.bottleneck(torch.cat(feats, 1))
        out = self.tail(self.deconv(fused))
        if self.residual_upsample:
            out = out + bicubic_upsample(x, self.scale)
        return out, feats[1:] + [fused]


@sr_factory()
def srdensenet(**kwargs) -> SRDenseNet:
    """SRDenseNet with the paper's sizes: 8 blocks x 8 layers, growth 16, 256-channel bottleneck."""
    defaults = dict(
        scale=4, in_channels=1, growth=16, num_layers=8, num_blocks=8, bottleneck=256, residual_upsample=True
    )
    return build("srdensenet", SRDenseNet, defaults, kwargs)
