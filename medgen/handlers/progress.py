"""A tqdm progress bar for MONAI/Ignite trainers (Ignite's own ``ProgressBar``: epoch i/N, iterations, loss)."""

from __future__ import annotations

from typing import Any

__all__ = ["ProgressHandler", "attach_progress"]


def _loss(out: Any) -> dict[str, float]:
    if isinstance(out, dict) and "loss" in out:
        return {"loss": float(out["loss"].detach())}
    return {}


def attach_progress(engine: Any, desc: str) -> Any:
    """Attach Ignite's ``ProgressBar`` (not kept on screen after the run) showing the running ``loss`` of
    MONAI's ``SupervisedTrainer`` output dict; returns the engine."""
    from ignite.handlers import ProgressBar

    ProgressBar(persist=False, desc=desc).attach(engine, output_transform=_loss)
    return engine


class ProgressHandler:
    """:func:`attach_progress` as a MONAI handler, for bundle configs (``train#handlers``)."""

    def __init__(self, desc: str = "training") -> None:
        self.desc = desc

    def attach(self, engine: Any) -> None:
        attach_progress(engine, self.desc)
