"""Dictionary wrappers for :mod:`medgen.transforms.regions.array`."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

from monai.config import KeysCollection
from monai.transforms import MapTransform

from medgen.transforms.regions.array import SelectAttentionRegions

__all__ = ["SelectAttentionRegionsd"]


class SelectAttentionRegionsd(MapTransform):
    """Read the attention map under each key and write its boxes to ``f"{key}{box_key_postfix}"``."""

    def __init__(
        self,
        keys: KeysCollection,
        k: int = 3,
        percentile: float = 95.0,
        min_size: int | Sequence[int] = 16,
        max_size: int | Sequence[int] = 64,
        nms_iou: float = 0.3,
        box_key_postfix: str = "_boxes",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.selector = SelectAttentionRegions(k, percentile, min_size, max_size, nms_iou)
        self.box_key_postfix = box_key_postfix

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[f"{key}{self.box_key_postfix}"] = self.selector(d[key])
        return d
