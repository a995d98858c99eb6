"""Load a radiograph from DICOM, PNG/JPEG or NIfTI as a float32 ``MetaTensor`` (1, H, W) in [0, 1].

Scaling to [0, 1] follows the *stored bit depth*, never the minimum and maximum of one image:

* DICOM: after the Modality LUT (and VOI LUT / window when present), values are divided by the range the
  LUTs can produce from ``BitsStored``-bit data. Without rescale or VOI that is ``value / (2**BitsStored - 1)``.
* PNG / JPEG: ``value / 255`` (8-bit) or ``value / 65535`` (16-bit container).
* NIfTI: ``cal_min``/``cal_max`` from the header, else the integer type's range; float data must already be
  in [0, 1].

So the same 12-bit data stored as DICOM (BitsStored 12) and as a 16-bit PNG (values scaled by 65535/4095)
load to the same numbers within 1/4095, and an image's brightness survives loading.
``normalize="minmax"`` maps each image's own minimum and maximum to 0 and 1 instead (for files whose bit
depth is unknown, such as float NIfTI in arbitrary units). MONOCHROME1 images are inverted so that dense
tissue is always bright.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Transform
from monai.utils import look_up_option

from medgen.registry import register
from medgen.transforms.io.dicom import DICOM_READERS, read_dicom
from medgen.transforms.io.errors import RadiographLoadError
from medgen.transforms.io.raster import read_nifti, read_pillow

logger = logging.getLogger("medgen.transforms.io")

NORMALIZE_MODES = ("bit_depth", "minmax")
_DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")
_PILLOW_SUFFIXES = (".png", ".jpg", ".jpeg")
_NIFTI_SUFFIXES = (".nii", ".nii.gz")


def detect_format(path: Path) -> str:
    """``"dicom"``, ``"pillow"`` or ``"nifti"`` from the file's magic bytes, then its suffix."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except FileNotFoundError:
        raise RadiographLoadError(f"{path}: file not found.") from None
    except IsADirectoryError:
        raise RadiographLoadError(f"{path}: is a folder; LoadRadiograph reads one image file.") from None
    name = path.name.lower()
    if head[128:132] == b"DICM" or name.endswith(_DICOM_SUFFIXES):
        return "dicom"
    if head[:8] == b"\x89PNG\r\n\x1a\n" or head[:3] == b"\xff\xd8\xff" or name.endswith(_PILLOW_SUFFIXES):
        return "pillow"
    if name.endswith(_NIFTI_SUFFIXES) or head[344:348] in (b"n+1\x00", b"ni1\x00"):
        return "nifti"
    if head[:2] == b"\x1f\x8b":  # gzip: NIfTI is the only gzipped format read here
        return "nifti"
    raise RadiographLoadError(
        f"{path}: unknown image format; LoadRadiograph reads DICOM (.dcm, or any file with the DICM preamble), "
        "PNG, JPEG and NIfTI (.nii, .nii.gz)."
    )


@register("transform", "load_radiograph")
class LoadRadiograph(Transform):
    """Load one radiograph file as a float32 ``MetaTensor`` of shape (1, H, W) with values in [0, 1].

    Args:
        reader: DICOM decoder, ``"pydicom"`` (default; compressed syntaxes through pydicom's pylibjpeg
            plugins) or ``"itk"`` (MONAI ``ITKReader``, i.e. GDCM). PNG/JPEG always use Pillow and NIfTI
            nibabel.
        normalize: ``"bit_depth"`` (default: divide by the stored bit depth's range, see the module docs) or
            ``"minmax"`` (each image's own min..max to 0..1).
        voi: apply a DICOM file's VOI LUT or first window centre/width when it has one (default True). With
            ``False`` the full Modality-LUT range is kept.
        frame: frame index for multi-frame DICOM or slice index (last axis) of a 3D NIfTI; such files are
            refused without it.
        bit_depth: override the bit depth of PNG/NIfTI integer data, e.g. 12 for 12-bit values stored in a
            16-bit PNG without rescaling. DICOM files use their BitsStored and refuse this option.

    Metadata (``img.meta``): ``filename_or_obj``, ``format``, ``reader``, ``spacing`` and ``pixdim`` ((row,
    col) mm; (1, 1) when the file states none, with ``spacing_known`` False), ``bits_stored`` (original bit
    depth; 0 for float data), ``photometric_interpretation`` (as stored), ``inverted`` (MONOCHROME1),
    ``original_shape`` / ``spatial_shape``, ``intensity_range`` (the stored values mapped to 0 and 1),
    ``normalize``, ``voi``, ``frame`` and, for DICOM, ``transfer_syntax`` and ``modality``. No patient tags.

    Raises:
        RadiographLoadError: a file that cannot be loaded as a grayscale 2D radiograph; the message names the
            file, the reason and the fix.
    """

    def __init__(
        self,
        reader: str = "pydicom",
        normalize: str = "bit_depth",
        voi: bool = True,
        frame: int | None = None,
        bit_depth: int | None = None,
    ) -> None:
        self.reader = look_up_option(reader, DICOM_READERS)
        self.normalize = look_up_option(normalize, NORMALIZE_MODES)
        self.voi = voi
        self.frame = frame
        if bit_depth is not None and not 1 <= int(bit_depth) <= 16:
            raise ValueError(f"LoadRadiograph: bit_depth={bit_depth} must be between 1 and 16.")
        self.bit_depth = bit_depth

    def __call__(self, filename: str | Path) -> MetaTensor:
        path = Path(filename)
        fmt = detect_format(path)
        if fmt == "dicom":
            if self.bit_depth is not None:
                raise RadiographLoadError(
                    f"{path}: bit_depth={self.bit_depth} applies to PNG/NIfTI only; DICOM files are scaled by "
                    "their BitsStored. Leave bit_depth unset."
                )
            info = read_dicom(path, frame=self.frame, voi=self.voi, reader=self.reader)
            reader = self.reader
        elif fmt == "pillow":
            if self.frame not in (None, 0):
                raise RadiographLoadError(
                    f"{path}: frame={self.frame} requested but PNG/JPEG files hold one image."
                )
            info = read_pillow(path)
            info["range"], info["frame"], reader = (0.0, 2.0 ** info["bits_stored"] - 1), 0, "pillow"
        else:
            info = read_nifti(path, frame=self.frame)
            reader = "nibabel"
        if fmt != "dicom" and self.bit_depth is not None:
            if info.get("dtype", "int").startswith("float"):
                raise RadiographLoadError(
                    f"{path}: bit_depth={self.bit_depth} given but the NIfTI data are float."
                )
            info["range"], info["bits_stored"] = (0.0, 2.0**self.bit_depth - 1), self.bit_depth
        img = self._scale(path, info)
        return self._to_meta_tensor(path, img, info, fmt, reader)

    def _scale(self, path: Path, info: dict[str, Any]) -> np.ndarray:
        arr = info["array"]
        if self.normalize == "minmax":
            lo, hi = float(arr.min()), float(arr.max())
            info["range"] = (lo, hi)
            out = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
        else:
            if info["range"] is None:
                raise RadiographLoadError(
                    f"{path}: {info.get('dtype')} data without cal_min/cal_max; the bit depth is unknown. Pass "
                    "bit_depth=<bits> (e.g. 12), set cal_min/cal_max in the header, or use normalize='minmax'."
                )
            lo, hi = info["range"]
            out = (arr - lo) / (hi - lo)
            tol = 1e-6
            if out.size and (out.min() < -tol or out.max() > 1 + tol):
                raise RadiographLoadError(
                    f"{path}: values {arr.min():g}..{arr.max():g} lie outside the range {lo:g}..{hi:g} implied "
                    f"by the file's bit depth / header. Fix the header (BitsStored, cal_min/cal_max), pass "
                    "bit_depth=..., or use normalize='minmax'."
                )
            out = np.clip(
                out, 0.0, 1.0
            )  # only float rounding is clipped here: larger excursions raised above
        if info["photometric_interpretation"] == "MONOCHROME1":
            out = 1.0 - out
        return out.astype(np.float32)

    def _to_meta_tensor(
        self, path: Path, img: np.ndarray, info: dict[str, Any], fmt: str, reader: str
    ) -> MetaTensor:
        spacing = info.get("spacing")
        known = spacing is not None and all(s > 0 for s in spacing)
        sp = np.asarray(spacing if known else (1.0, 1.0), dtype=np.float64)
        affine = torch.diag(torch.tensor([sp[0], sp[1], 1.0, 1.0], dtype=torch.float64))
        shape = np.asarray(img.shape)
        meta = {
            "filename_or_obj": str(path),
            "format": {"pillow": "png/jpeg"}.get(fmt, fmt),
            "reader": reader,
            "spacing": sp,
            "pixdim": sp.copy(),
            "spacing_known": known,
            "bits_stored": int(info.get("bits_stored") or 0),
            "photometric_interpretation": info["photometric_interpretation"],
            "inverted": info["photometric_interpretation"] == "MONOCHROME1",
            "original_shape": shape,
            "spatial_shape": shape.copy(),
            "original_channel_dim": 0,
            "intensity_range": np.asarray(info["range"], dtype=np.float64),
            "normalize": self.normalize,
            "voi": info.get("voi", "none"),
            "frame": int(info.get("frame") or 0),
        }
        if fmt == "dicom":
            meta["transfer_syntax"] = info["transfer_syntax"]
            meta["modality"] = info["modality"]
        return MetaTensor(torch.from_numpy(img[None]), affine=affine, meta=meta)


def load_radiographs(filenames: Sequence[str | Path], **kwargs: Any) -> list[MetaTensor]:
    """Load several files with one :class:`LoadRadiograph` configuration (convenience for scripts)."""
    loader = LoadRadiograph(**kwargs)
    return [loader(f) for f in filenames]
