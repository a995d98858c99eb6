"""Building blocks shared by the super-resolution zoo (``medgen.networks.nets``).

Every SR network in medgen is a :class:`SRNetwork`: one method, :meth:`SRNetwork.forward_with_features`, returns
the super-resolved image *and* the intermediate feature maps of the same pass, so ``forward`` and
``forward_features`` (timm style, used by feature distillation without hooks) never compute anything twice.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SUPPORTED_SCALES = (2, 3, 4)


def check_scale(scale: int, allowed: tuple[int, ...] = SUPPORTED_SCALES, network: str = "network") -> int:
    """Return ``scale`` as int or raise naming the allowed values."""
    if int(scale) != scale or int(scale) not in allowed:
        raise ValueError(f"{network}: scale={scale!r} is not supported; use one of {list(allowed)}.")
    return int(scale)


def bicubic_upsample(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic x``scale`` upsampling (PyTorch/Matlab-style kernel, ``align_corners=False``)."""
    size = [int(x.shape[-2]) * scale, int(x.shape[-1]) * scale]  # explicit size: TorchScript-friendly
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False)


class SRNetwork(nn.Module):
    """Base class of medgen SR networks: LR ``(B, C, h, w)`` in, HR ``(B, C, h*scale, w*scale)`` out.

    Subclasses implement :meth:`forward_with_features`. ``arch`` and ``config`` are set by the registered
    factory functions so a checkpoint can record (and later check) which architecture and scale it holds.
    """

    def __init__(self, scale: int, in_channels: int = 1) -> None:
        super().__init__()
        self.scale = int(scale)
        self.in_channels = int(in_channels)
        self.class_name = type(self).__name__
        self.arch = ""  # set by the registered factory (medgen.networks.utils.build)
        self.config: dict = {}  # constructor arguments, stored in checkpoints

    def check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(  # str() concatenation keeps this TorchScript-compatible (bundle export)
                self.class_name
                + " expects a (batch, "
                + str(self.in_channels)
                + ", height, width) tensor, got "
                "shape "
                + str(x.shape)
                + "; add batch/channel dimensions or convert the image to "
                + str(self.in_channels)
                + " channel(s)."
            )

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        raise NotImplementedError

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Intermediate feature maps (shallow to deep) for feature distillation."""
        return self.forward_with_features(x)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_features(x)[0]


def conv3x3(in_ch: int, out_ch: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=bias)


class DepthwiseSeparableConv2d(nn.Module):
    """Depthwise ``k x k`` conv followed by a pointwise ``1 x 1`` conv (MobileNet / Swift-SRGAN)."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1, bias: bool = True
    ) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(
            in_ch, in_ch, kernel_size, stride=stride, padding=kernel_size // 2, groups=in_ch, bias=bias
        )
        self.pointwise = nn.Conv2d(in_ch, out_ch, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class PixelShuffleUpsampler(nn.Sequential):
    """Sub-pixel upsampling: x2 stages for scale 2/4, one x3 stage for scale 3."""

    def __init__(self, channels: int, scale: int, separable: bool = False, act: bool = False) -> None:
        stages = [2, 2] if scale == 4 else [scale]
        layers: list[nn.Module] = []
        for r in stages:
            conv = (
                DepthwiseSeparableConv2d(channels, channels * r * r)
                if separable
                else conv3x3(channels, channels * r * r)
            )
            layers += [conv, nn.PixelShuffle(r)]
            if act:
                layers.append(nn.PReLU(channels))
        super().__init__(*layers)


def scale_last_conv_(conv: nn.Module, factor: float = 0.1) -> None:
    """Shrink a residual branch's last conv so a fresh network starts close to its bicubic skip."""
    for m in conv.modules():
        if isinstance(m, nn.Conv2d):
            last = m
    with torch.no_grad():
        last.weight.mul_(factor)
        if last.bias is not None:
            last.bias.zero_()
