"""Radiograph loading: DICOM (pydicom or ITK), PNG/JPEG and NIfTI to a [0, 1] ``MetaTensor`` (1, H, W)."""

from medgen.transforms.io.array import LoadRadiograph, detect_format, load_radiographs
from medgen.transforms.io.dictionary import LoadRadiographd
from medgen.transforms.io.errors import RadiographLoadError

__all__ = ["LoadRadiograph", "LoadRadiographd", "RadiographLoadError", "detect_format", "load_radiographs"]
