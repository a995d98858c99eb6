"""Dictionary wrappers (``...d``) of the display operations in :mod:`medgen.transforms.display.array`."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform

from medgen.transforms.display.array import (
    CLAHE,
    EnhancePreset,
    EqualizeHistogram,
    MedianFilter,
    UnsharpMask,
    Vignette,
    Window,
)


class _Mapd(MapTransform):
    """Apply one array transform to every key; constructor arguments after ``keys`` go to that transform."""

    array_class: type[Transform]

    def __init__(
        self, keys: KeysCollection, *args: Any, allow_missing_keys: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.op = self.array_class(*args, **kwargs)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.op(d[key])
        return d


class Windowd(_Mapd):
    """Dictionary :class:`~medgen.transforms.display.array.Window`: ``Windowd("image", center, width)``."""

    array_class = Window


class CLAHEd(_Mapd):
    """Dictionary :class:`~medgen.transforms.display.array.CLAHE`."""

    array_class = CLAHE


class MedianFilterd(_Mapd):
    """Dictionary :class:`~medgen.transforms.display.array.MedianFilter`."""

    array_class = MedianFilter


class UnsharpMaskd(_Mapd):
    """Dictionary :class:`~medgen.transforms.display.array.UnsharpMask`."""

    array_class = UnsharpMask


class EqualizeHistogramd(_Mapd):
    """Dictionary :class:`~medgen.transforms.display.array.EqualizeHistogram`."""

    array_class = EqualizeHistogram


class Vignetted(_Mapd):
    """Dictionary :class:`~medgen.transforms.display.array.Vignette`."""

    array_class = Vignette


class EnhancePresetd(_Mapd):
    """Dictionary :class:`~medgen.transforms.display.array.EnhancePreset`: ``EnhancePresetd("image", "balanced")``."""

    array_class = EnhancePreset
