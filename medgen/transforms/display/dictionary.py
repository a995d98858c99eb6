"""Dictionary wrappers (``...d``) of the display operations in :mod:`medgen.transforms.display.array`."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform

from medgen.registry import register
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


@register("transform", "windowd")
class Windowd(_Mapd):
    """Dictionary :class:`~medgen.transforms.display.array.Window`: ``Windowd("image", center, width)``."""

    array_class = Window


@register("transform", "clahed")
class CLAHEd(_Mapd):
    """Dictionary :class:`~medgen.transforms.display.array.CLAHE`."""

    array_class = CLAHE


@register("transform", "median_filterd")
class MedianFilterd(_Mapd):
    """Dictionary :class:`~medgen.transforms.display.array.MedianFilter`."""

    array_class = MedianFilter


@register("transform", "unsharp_maskd")
class UnsharpMaskd(_Mapd):
    """Dictionary :class:`~medgen.transforms.display.array.UnsharpMask`."""

    array_class = UnsharpMask


@register("transform", "equalize_histogramd")
class EqualizeHistogramd(_Mapd):
    """Dictionary :class:`~medgen.transforms.display.array.EqualizeHistogram`."""

    array_class = EqualizeHistogram


@register("transform", "vignetted")
class Vignetted(_Mapd):
    """Dictionary :class:`~medgen.transforms.display.array.Vignette`."""

    array_class = Vignette


@register("transform", "enhance_presetd")
class EnhancePresetd(_Mapd):
    """Dictionary :class:`~medgen.transforms.display.array.EnhancePreset`: ``EnhancePresetd("image", "balanced")``."""

    array_class = EnhancePreset
