"""Figures written during a run into ``<output_dir>/figures`` (which the tracking overlay logs to MLflow)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class SaveBatchFigure:
    """Save ``image | label | pred`` panels of the first items of the last batch when the engine completes.

    Attach to an evaluator (``validate#handlers``). Works for any 2D single-channel outputs of different sizes
    (segmentation, super-resolution).

    Args:
        output_dir: the figure goes to ``output_dir/filename``.
        filename: PNG file name.
        keys: batch/output keys to show, left to right; missing keys are skipped (and named in the title).
        max_items: rows in the figure.
    """

    def __init__(
        self,
        output_dir: str | Path,
        filename: str = "validation_samples.png",
        keys: tuple[str, ...] = ("image", "label", "pred"),
        max_items: int = 2,
    ) -> None:
        self.path = Path(output_dir) / filename
        self.keys = tuple(keys)
        self.max_items = max_items

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        if not engine.has_event_handler(self, Events.COMPLETED):
            engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Any) -> None:
        import torch

        from medgen.visualize.pyplot import pyplot

        plt = pyplot()

        batch = engine.state.batch
        output = engine.state.output
        if isinstance(batch, list):  # decollated by MONAI: a list of per-item dicts
            batch = {
                k: torch.stack([torch.as_tensor(b[k]) for b in batch]) for k in batch[0] if k in self.keys
            }
        if isinstance(output, list):
            output = {
                k: torch.stack([torch.as_tensor(o[k]) for o in output]) for k in output[0] if k in self.keys
            }
        source = {**(batch or {}), **(output or {})}
        keys = [k for k in self.keys if k in source]
        if not keys:
            return
        n = min(self.max_items, int(source[keys[0]].shape[0]))
        fig, axes = plt.subplots(n, len(keys), figsize=(3 * len(keys), 3 * n), squeeze=False)
        for row in range(n):
            for col, key in enumerate(keys):
                img = source[key][row].detach().float().cpu()
                axes[row][col].imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
                axes[row][col].set_title(f"{key} {tuple(img.shape[-2:])}", fontsize=8)
                axes[row][col].axis("off")
        fig.tight_layout()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(self.path, dpi=80)
        plt.close(fig)
