"""What the diffusion trainers of medgen share: MONAI's ``DiffusionInferer`` with its conditioning mode fixed."""

from __future__ import annotations

from typing import Any

__all__ = ["DiffusionModeInferer"]


class DiffusionModeInferer:
    """``DiffusionInferer(scheduler)`` called with ``mode`` (``"concat"`` or ``"crossattn"``) on every call.

    MONAI's ``SupervisedTrainer`` calls ``inferer(inputs, network, **kwargs)`` without a ``mode``, and
    ``DiffusionInferer`` defaults to ``"crossattn"``; this adapter pins the mode a trainer needs.
    """

    def __init__(self, scheduler: Any, mode: str) -> None:
        from monai.inferers import DiffusionInferer

        if mode not in ("concat", "crossattn"):
            raise ValueError(f"DiffusionModeInferer: mode must be 'concat' or 'crossattn', got {mode!r}")
        self.inferer = DiffusionInferer(scheduler)
        self.mode = mode

    def __call__(self, inputs: Any, network: Any, *args: Any, **kwargs: Any) -> Any:
        return self.inferer(inputs, network, *args, mode=self.mode, **kwargs)
