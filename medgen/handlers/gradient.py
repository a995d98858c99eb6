"""Gradient-norm clipping as a MONAI/Ignite handler (usable from bundle configs and from Python)."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["GradientClipHandler"]


class GradientClipHandler:
    """Clip the global L2 norm of the trainer network's gradients to ``max_norm`` before every optimiser step.

    MONAI's ``SupervisedTrainer`` has no clipping option but fires ``IterationEvents.BACKWARD_COMPLETED`` between
    ``loss.backward()`` and ``optimizer.step()``; this handler runs ``torch.nn.utils.clip_grad_norm_`` there (what
    timm's ``--clip-grad`` does in its own loop). In a bundle config::

        - {_target_: medgen.handlers.gradient.GradientClipHandler, max_norm: 1.0}
    """

    def __init__(self, max_norm: float = 1.0) -> None:
        if not max_norm > 0:
            raise ValueError(f"GradientClipHandler: max_norm must be > 0, got {max_norm}")
        self.max_norm = float(max_norm)

    def attach(self, engine: Any) -> None:
        from monai.engines.utils import IterationEvents

        engine.add_event_handler(IterationEvents.BACKWARD_COMPLETED, self)

    def __call__(self, engine: Any) -> None:
        torch.nn.utils.clip_grad_norm_(engine.network.parameters(), self.max_norm)
