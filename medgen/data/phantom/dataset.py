"""``PhantomDataset``: phantom studies rendered on the fly as MONAI-style dictionaries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from medgen.data.labels import PHANTOM_LABELS
from medgen.data.phantom.render import check_size, render_phantom


class PhantomDataset(torch.utils.data.Dataset):
    """``n`` phantom studies of set ``seed`` at ``size`` pixels, rendered when indexed (nothing cached).

    Items are dictionaries like ``monai.data.Dataset`` yields: ``image`` (1, H, W) float32 in [0, 1],
    ``label`` float32 over :data:`PHANTOM_LABELS`, ``patient_id``, ``report`` (text), ``index``,
    ``pixel_spacing_mm``, ``ctr``, and with ``with_masks=True`` a ``mask`` (K, H, W) uint8 in label order
    plus ``lungs`` / ``heart`` / ``thorax`` (1, H, W) uint8. ``transform`` (e.g. a MONAI ``Compose`` of
    ``...d`` transforms) is applied to each item.
    """

    def __init__(
        self,
        n: int,
        size: int = 256,
        seed: int = 0,
        transform: Callable[[dict[str, Any]], Any] | None = None,
        with_masks: bool = False,
        start: int = 0,
    ) -> None:
        if int(n) < 1:
            raise ValueError(f"PhantomDataset(n={n}): n must be >= 1")
        self.n, self.size, self.seed, self.start = int(n), check_size(size), int(seed), int(start)
        self.transform, self.with_masks = transform, with_masks
        self.labels = PHANTOM_LABELS

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        if not -self.n <= i < self.n:
            raise IndexError(f"PhantomDataset index {i} out of range for length {self.n}")
        index = self.start + (i % self.n)
        s = render_phantom(index, self.size, self.seed)
        item: dict[str, Any] = {
            "image": s.image[None],
            "label": s.labels.astype(np.float32),
            "patient_id": s.patient_id,
            "report": s.report["text"],
            "index": index,
            "pixel_spacing_mm": np.float32(s.pixel_spacing_mm),
            "ctr": np.float32(s.ctr),
        }
        if self.with_masks:
            item["mask"] = np.stack([s.masks[k] for k in PHANTOM_LABELS]).astype(np.uint8)
            for k in ("lungs", "heart", "thorax"):
                item[k] = getattr(s, k)[None].astype(np.uint8)
        return self.transform(item) if self.transform is not None else item
