"""Radiograph I/O: DICOM (pydicom or ITK), PNG/JPEG and NIfTI to a [0, 1] ``MetaTensor`` (1, H, W), and back."""

from medgen.transforms.io.array import LoadRadiograph, SaveRadiograph, detect_format, load_radiographs
from medgen.transforms.io.dictionary import LoadRadiographd, SaveRadiographd
from medgen.transforms.io.errors import RadiographLoadError
from medgen.transforms.io.synthetic import read_synthetic_marks, write_synthetic_dicom, write_synthetic_png

__all__ = [
    "LoadRadiograph",
    "LoadRadiographd",
    "RadiographLoadError",
    "SaveRadiograph",
    "SaveRadiographd",
    "detect_format",
    "load_radiographs",
    "read_synthetic_marks",
    "write_synthetic_dicom",
    "write_synthetic_png",
]
