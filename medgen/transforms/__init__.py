"""medgen transforms, MONAI style: each topic has ``array.py`` (does the work) and ``dictionary.py`` (``...d``).

Topics: ``io`` (LoadRadiograph), ``degradation`` (PairedDegradation, downsample/upsample baselines) and
``display`` (window, CLAHE, presets, image statistics). Names are imported on first use (PEP 562), so
``import medgen.transforms`` does not import MONAI transforms, pydicom or scikit-image.
"""

from __future__ import annotations

import importlib
from typing import Any

_TOPICS = {
    "medgen.transforms.io": (
        "LoadRadiograph",
        "LoadRadiographd",
        "RadiographLoadError",
        "detect_format",
        "load_radiographs",
    ),
    "medgen.transforms.degradation": (
        "DOWNSAMPLE_METHODS",
        "UPSAMPLE_METHODS",
        "PairedDegradation",
        "PairedDegradationd",
        "check_divisible",
        "downsample",
        "resize",
        "upsample",
    ),
    "medgen.transforms.display": (
        "CLAHE",
        "PRESETS",
        "CLAHEd",
        "EnhancePreset",
        "EnhancePresetd",
        "EqualizeHistogram",
        "EqualizeHistogramd",
        "MedianFilter",
        "MedianFilterd",
        "UnsharpMask",
        "UnsharpMaskd",
        "Vignette",
        "Vignetted",
        "Window",
        "Windowd",
        "apply_preset",
        "clahe",
        "equalize_histogram",
        "image_statistics",
        "median_filter",
        "unsharp_mask",
        "vignette",
        "window",
    ),
}
_WHERE = {name: module for module, names in _TOPICS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'medgen.transforms' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
