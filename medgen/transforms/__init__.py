"""medgen transforms, MONAI style: each topic has ``array.py`` (does the work) and ``dictionary.py`` (``...d``).

Topics: ``io`` (LoadRadiograph), ``degradation`` (PairedDegradation, downsample/upsample baselines) and
``display`` (window, CLAHE, presets, image statistics). Names are imported on first use (PEP 562), so
``import medgen.transforms`` does not import MONAI transforms, pydicom or scikit-image.
"""

from __future__ import annotations

from medgen.lazy import lazy_exports

# each topic's __init__ lists its names (__all__); a name is looked up in these topics in order on first use
__getattr__, __dir__ = lazy_exports(
    __name__, search=("medgen.transforms.io", "medgen.transforms.degradation", "medgen.transforms.display")
)
