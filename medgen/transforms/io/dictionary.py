"""Dictionary wrapper of :class:`~medgen.transforms.io.array.LoadRadiograph` (MONAI ``MapTransform``)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform

from medgen.registry import register
from medgen.transforms.io.array import LoadRadiograph


@register("transform", "load_radiographd")
class LoadRadiographd(MapTransform):
    """Replace each file path under ``keys`` by its radiograph ``MetaTensor`` (1, H, W) in [0, 1].

    Args:
        keys: keys holding file paths.
        allow_missing_keys: do not raise when a key is absent.
        **loader_kwargs: passed to :class:`LoadRadiograph` (``reader``, ``normalize``, ``voi``, ``frame``,
            ``bit_depth``).
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False, **loader_kwargs: Any) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadRadiograph(**loader_kwargs)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key])
        return d
