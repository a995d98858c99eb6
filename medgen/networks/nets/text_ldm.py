"""The diffusion network of the text-to-X-ray LDM: MONAI ``DiffusionModelUNet`` with cross-attention to the
token states of a registered text encoder.

:class:`TextConditionedUNet` takes the prompt as *token ids* packed with their mask (``context`` (B, 2, T) long:
row 0 the ids, row 1 the mask, as :meth:`TextConditionedUNet.pack` makes them) and runs the encoder inside the
forward pass, so a trainable encoder (``scratch_transformer``) trains with the UNet, and a frozen one (``minilm``)
is simply not updated. Training, the null prompt of classifier-free guidance and sampling all go through
:meth:`~medgen.networks.text.encoders.TextEncoder.encode_ids`: the unconditional branch at sampling is exactly the
conditioning the dropped prompts had in training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["TextConditionedUNet", "text_conditioned_unet"]


class TextConditionedUNet(nn.Module):
    """``DiffusionModelUNet(with_conditioning=True, cross_attention_dim=encoder.dim)`` + its text encoder.

    Args:
        text_encoder: a :class:`~medgen.networks.text.encoders.TextEncoder`.
        latent_channels: channels of the autoencoder's latent (in and out).
        channels: UNet widths per level; ``attention_levels``: cross-attention per level (the seed: 8/16/32 px
            latents); ``num_res_blocks``, ``num_head_channels``, ``norm_num_groups`` as in MONAI.
    """

    def __init__(
        self,
        text_encoder: nn.Module,
        latent_channels: int = 8,
        channels: Sequence[int] = (128, 256, 512),
        attention_levels: Sequence[bool] = (True, True, True),
        num_res_blocks: int = 2,
        num_head_channels: int = 64,
        norm_num_groups: int = 32,
    ) -> None:
        from monai.networks.nets import DiffusionModelUNet

        super().__init__()
        if len(attention_levels) != len(channels):
            raise ValueError(
                f"TextConditionedUNet: attention_levels has {len(attention_levels)} entries for {len(channels)} levels"
            )
        self.text_encoder = text_encoder
        self.latent_channels = int(latent_channels)
        self.unet = DiffusionModelUNet(
            spatial_dims=2,
            in_channels=self.latent_channels,
            out_channels=self.latent_channels,
            channels=tuple(int(c) for c in channels),
            attention_levels=tuple(bool(a) for a in attention_levels),
            num_res_blocks=int(num_res_blocks),
            num_head_channels=int(num_head_channels),
            norm_num_groups=int(norm_num_groups),
            with_conditioning=True,
            cross_attention_dim=int(text_encoder.dim),
        )

    def pack(self, prompts: Sequence[str]) -> torch.Tensor:
        """Prompts -> ``(B, 2, T)`` long (ids, mask), each prompt fitted to the encoder's token limit first."""
        texts = [self.text_encoder.fit(p)[0] for p in prompts]
        ids, mask = self.text_encoder.tokenize(texts)
        return torch.stack([ids, mask.long()], dim=1)

    def null_context(self, batch: int = 1) -> torch.Tensor:
        """The packed ids of the null prompt ``""`` repeated ``batch`` times (classifier-free guidance)."""
        ids, mask = self.text_encoder.tokenize([self.text_encoder.null_prompt])
        return torch.stack([ids, mask.long()], dim=1).repeat(int(batch), 1, 1)

    def context_states(self, context: torch.Tensor) -> torch.Tensor:
        """Token states ``(B, T, dim)`` of packed ``context`` (or ``context`` itself when it already is states)."""
        if context.is_floating_point():
            return context
        if context.ndim != 3 or context.shape[1] != 2:
            raise ValueError(f"context must be packed (B, 2, T) ids and mask, got {tuple(context.shape)}")
        return self.text_encoder.encode_ids(context[:, 0], context[:, 1].bool())

    def example_inputs(self, size: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(latent, timestep, packed prompt)`` for tracing and ``medgen verify``."""
        x = torch.randn(1, self.latent_channels, size, size)
        return x, torch.tensor([10]), self.pack(["Moderate cardiomegaly. No pleural effusion."])

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.unet(x, timesteps=timesteps, context=self.context_states(context))


def text_conditioned_unet(
    text_encoder: dict[str, Any] | nn.Module | None = None, **kwargs: Any
) -> TextConditionedUNet:
    """Registry factory: ``text_encoder`` is an encoder module or ``{"name": <text_encoder>, "kwargs": {...}}``
    (default: a 256-wide ``scratch_transformer``)."""
    from medgen.networks.utils import build
    from medgen.registry import REGISTRY

    spec = text_encoder if text_encoder is not None else {"name": "scratch_transformer", "kwargs": {}}
    if isinstance(spec, dict):
        encoder = REGISTRY.create("text_encoder", spec["name"], **dict(spec.get("kwargs") or {}))
    else:
        encoder, spec = (
            spec,
            {"name": getattr(spec, "arch", type(spec).__name__), "kwargs": dict(getattr(spec, "config", {}))},
        )
    defaults = dict(
        text_encoder=None,
        latent_channels=8,
        channels=(128, 256, 512),
        attention_levels=(True, True, True),
        num_res_blocks=2,
        num_head_channels=64,
        norm_num_groups=32,
    )
    model = build("text_conditioned_unet", TextConditionedUNet, defaults, {**kwargs, "text_encoder": encoder})
    model.config = {**model.config, "text_encoder": spec}
    return model
