"""Dictionary wrapper of :class:`~medgen.transforms.degradation.array.PairedDegradation`."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable

from medgen.transforms.degradation.array import PairedDegradation


class PairedDegradationd(Randomizable, MapTransform):
    """Read an HR image from ``keys`` and write the pair under ``lr_key`` and ``hr_key``.

    Args:
        keys: the one key holding the HR (C, H, W) image (e.g. ``"image"``).
        lr_key: key that receives the degraded LR image.
        hr_key: key that receives the HR image (cropped when ``crop_to_multiple=True``); may equal ``keys``.
        allow_missing_keys: return the data unchanged when the key is absent.
        **kwargs: passed to :class:`PairedDegradation` (``scale``, ``method``, ``blur_sigma``,
            ``poisson_peak``, ``gaussian_std``, ``crop_to_multiple``).
    """

    def __init__(
        self,
        keys: KeysCollection = "image",
        lr_key: str = "lr",
        hr_key: str = "hr",
        allow_missing_keys: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(
                f"PairedDegradationd: keys={self.keys} names {len(self.keys)} keys; it reads one HR image. "
                "Use one PairedDegradationd per image."
            )
        self.lr_key, self.hr_key = lr_key, hr_key
        self.degrade = PairedDegradation(**kwargs)

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | None = None
    ) -> PairedDegradationd:
        super().set_random_state(seed, state)
        self.degrade.set_random_state(state=self.R)
        return self

    def randomize(self, data: Any = None) -> None:
        self.degrade.randomize()

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            self.randomize()
            d[self.lr_key], d[self.hr_key] = self.degrade(d[key], randomize=False)
        return d
