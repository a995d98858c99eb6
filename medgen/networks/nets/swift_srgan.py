"""Swift-SRGAN (Krishnan & Lakshmanan, 2021): a depthwise-separable SRResNet generator and discriminator.

Generator: 9x9 separable head, residual blocks of separable convs with batch norm and PReLU, sub-pixel
upsampling, 9x9 separable tail. The original squashes the output with ``(tanh + 1) / 2``; medgen instead adds a
bicubic skip (``residual_upsample=True``) so a short run starts at the bicubic baseline and outputs are not
limited to the open interval (0, 1); ``residual_upsample=False`` restores the tanh output.
"""

from __future__ import annotations

import torch
from torch import nn

from medgen.networks.blocks.sr import (
    DepthwiseSeparableConv2d,
    PixelShuffleUpsampler,
    SRNetwork,
    bicubic_upsample,
    check_scale,
    scale_last_conv_,
)
from medgen.networks.utils import SR_DISCRIMINATOR_TASK, build, sr_factory


class SeparableResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            DepthwiseSeparableConv2d(channels, channels),
            nn.BatchNorm2d(channels),
            nn.PReLU(channels),
            DepthwiseSeparableConv2d(channels, channels),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SwiftSRGANGenerator(SRNetwork):
    """Swift-SRGAN generator.

    Args:
        scale: upscaling factor (2, 3 or 4).
        in_channels: image channels.
        width: feature channels (original 64).
        num_blocks: residual blocks (original 16).
        residual_upsample: add a bicubic skip (medgen default) instead of the original tanh output.
    """

    def __init__(
        self,
        scale: int = 4,
        in_channels: int = 1,
        width: int = 64,
        num_blocks: int = 16,
        residual_upsample: bool = True,
    ) -> None:
        super().__init__(check_scale(scale, network="SwiftSRGANGenerator"), in_channels)
        self.residual_upsample = residual_upsample
        self.head = nn.Sequential(DepthwiseSeparableConv2d(in_channels, width, 9), nn.PReLU(width))
        self.blocks = nn.ModuleList(SeparableResidualBlock(width) for _ in range(num_blocks))
        self.body_tail = nn.Sequential(DepthwiseSeparableConv2d(width, width), nn.BatchNorm2d(width))
        self.upsample = PixelShuffleUpsampler(width, self.scale, separable=True, act=True)
        self.tail = DepthwiseSeparableConv2d(width, in_channels, 9)
        if residual_upsample:
            scale_last_conv_(self.tail)

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        self.check_input(x)
        head = self.head(x)
        h = head
        feats = []
        for block in self.blocks:
            h = block(h)
            feats.append(h)
        h = self.body_tail(h) + head
        feats.append(h)
        out = self.tail(self.upsample(h))
        if self.residual_upsample:
            out = out + bicubic_upsample(x, self.scale)
        else:
            out = (torch.tanh(out) + 1) / 2
        return out, feats


class SwiftSRGANDiscriminator(nn.Module):
    """Swift-SRGAN discriminator: separable conv blocks (stride 1/2 alternating), pooled MLP, one logit.

    Args:
        in_channels: image channels.
        width: channels of the first block; doubled every second block (original 64).
        num_blocks: conv blocks (original 8).
        pool_size: adaptive average pool size before the MLP (original 6).
    """

    def __init__(
        self, in_channels: int = 1, width: int = 64, num_blocks: int = 8, pool_size: int = 6
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        ch_in = in_channels
        for i in range(num_blocks):
            ch_out = width * 2 ** (i // 2)
            layers.append(DepthwiseSeparableConv2d(ch_in, ch_out, 3, stride=1 + i % 2, bias=i == 0))
            if i > 0:
                layers.append(nn.BatchNorm2d(ch_out))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            ch_in = ch_out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(pool_size),
            nn.Flatten(),
            nn.Linear(ch_in * pool_size * pool_size, 1024),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(1024, 1),
        )

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.features(x)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Real/fake logit per image, shape ``(B, 1)``."""
        return self.classifier(self.features(x))


_GEN = dict(scale=4, in_channels=1, width=64, num_blocks=16, residual_upsample=True)


@sr_factory()
def swift_srgan(**kwargs) -> SwiftSRGANGenerator:
    """Swift-SRGAN generator as published: width 64, 16 residual blocks."""
    return build("swift_srgan", SwiftSRGANGenerator, dict(_GEN), kwargs)


@sr_factory()
def swift_srgan_tiny(**kwargs) -> SwiftSRGANGenerator:
    """Compact student: width 32, 4 residual blocks."""
    return build("swift_srgan_tiny", SwiftSRGANGenerator, dict(_GEN, width=32, num_blocks=4), kwargs)


@sr_factory(SR_DISCRIMINATOR_TASK)
def swift_srgan_discriminator(**kwargs) -> SwiftSRGANDiscriminator:
    """Swift-SRGAN discriminator as published: width 64, 8 blocks."""
    defaults = dict(in_channels=1, width=64, num_blocks=8, pool_size=6)
    return build("swift_srgan_discriminator", SwiftSRGANDiscriminator, defaults, kwargs)
