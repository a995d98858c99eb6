"""Image writers shared by medgen: 16-bit PNG, DICOM (DX, 12 bits stored) and NIfTI.

Arrays are 2-D float images in [0, 1] laid out (rows, columns). Values outside [0, 1] or non-finite values
are refused rather than clipped, so a bad pipeline stage is noticed where it happens.
DICOM writing works with pydicom 2.4 and 3.x (the version differences are branched on below).
"""

from __future__ import annotations

import copy
import datetime as _dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

DX_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
PIXEL_TAGS = (
    "PixelData",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "NumberOfFrames",
    "RescaleIntercept",
    "RescaleSlope",
    "WindowCenter",
    "WindowWidth",
    "VOILUTSequence",
    "ModalityLUTSequence",
    "SmallestImagePixelValue",
    "LargestImagePixelValue",
)


def _check01(array: np.ndarray, path: str | Path, what: str) -> np.ndarray:
    a = np.asarray(array)
    if a.ndim != 2:
        raise ValueError(f"{what}({path}): expected a 2-D (rows, columns) image, got shape {a.shape}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{what}({path}): image has NaN/inf values; fix the stage that produced it")
    lo, hi = float(a.min()), float(a.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"{what}({path}): image values must lie in [0, 1], got [{lo:.4g}, {hi:.4g}]; "
            f"normalise (e.g. ScaleIntensity) before writing"
        )
    return a


def write_png16(path: str | Path, array01: np.ndarray) -> Path:
    """Write a [0, 1] image as a 16-bit greyscale PNG (value * 65535, rounded)."""
    from PIL import Image

    a = _check01(array01, path, "write_png16")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(a * 65535.0).astype(np.uint16)).save(path)
    return path


def write_mask_png(path: str | Path, mask: np.ndarray) -> Path:
    """Write an integer mask (bool or uint8/uint16 bit field) as an 8- or 16-bit PNG, values unchanged."""
    from PIL import Image

    m = np.asarray(mask)
    if m.ndim != 2 or m.dtype.kind not in "biu" or (m.size and (m.min() < 0 or m.max() > 65535)):
        raise ValueError(
            f"write_mask_png({path}): expected a 2-D bool/unsigned mask < 65536, got {m.dtype} {m.shape}"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dtype = np.uint8 if m.size == 0 or m.max() < 256 else np.uint16
    Image.fromarray(m.astype(dtype)).save(path)
    return path


def write_nifti(
    path: str | Path, array01: np.ndarray, pixel_spacing_mm: float | tuple[float, float] = 1.0
) -> Path:
    """Write a [0, 1] image as float32 NIfTI with the spacing in the affine.

    The array is stored transposed, (columns, rows), so the first NIfTI axis is image x; this is the layout
    that MONAI's ``LoadImage`` returns for PNG and DICOM too. ``nib.load(p).get_fdata()[..., 0].T`` or
    ``np.asarray(img.dataobj).T`` gives the (rows, columns) image back.
    """
    import nibabel as nib

    a = _check01(array01, path, "write_nifti").astype(np.float32)
    row_mm, col_mm = (
        (pixel_spacing_mm, pixel_spacing_mm) if np.isscalar(pixel_spacing_mm) else pixel_spacing_mm
    )
    affine = np.diag([float(col_mm), float(row_mm), 1.0, 1.0])
    img = nib.Nifti1Image(a.T.copy(), affine)
    img.header.set_xyzt_units("mm")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


def _pydicom_major() -> int:
    import pydicom

    return int(str(pydicom.__version__).split(".")[0])


def write_dicom(
    path: str | Path,
    array01: np.ndarray,
    pixel_spacing_mm: float | tuple[float, float] | None = None,
    photometric: str = "MONOCHROME2",
    template: Any | None = None,
    tags: Mapping[str, Any] | None = None,
    bits_stored: int = 12,
) -> Path:
    """Write a [0, 1] image as an uncompressed DICOM DX file (BitsAllocated 16, ``bits_stored`` bits).

    Args:
        path: output file.
        array01: (rows, columns) image in [0, 1], high = dense (bone bright) as displayed in MONOCHROME2.
        pixel_spacing_mm: row and column spacing (or one value); written as PixelSpacing and
            ImagerPixelSpacing.
        photometric: "MONOCHROME2" (0 = black) or "MONOCHROME1" (stored values inverted, 0 = white).
        template: optional ``pydicom.Dataset`` (e.g. the source study) whose non-pixel tags are copied, so a
            processed image keeps its patient/study context; new SOP/Series UIDs are always generated.
        tags: optional ``{keyword: value}`` overrides applied last (e.g. ``{"SeriesDescription": "SR x4"}``).
        bits_stored: 8..16; stored values are ``round(value * (2**bits_stored - 1))``.
    """
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    a = _check01(array01, path, "write_dicom")
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ValueError(
            f"write_dicom({path}): photometric={photometric!r}; use 'MONOCHROME2' or 'MONOCHROME1'"
        )
    if not 8 <= int(bits_stored) <= 16:
        raise ValueError(f"write_dicom({path}): bits_stored={bits_stored} must be within 8..16")
    top = (1 << int(bits_stored)) - 1
    stored = np.round(a * top).astype(np.uint16)
    if photometric == "MONOCHROME1":
        stored = (top - stored).astype(np.uint16)

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DX_SOP_CLASS
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = generate_uid()
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    if template is not None:
        for elem in template:
            if elem.keyword and elem.keyword not in PIXEL_TAGS and elem.tag.group != 0x0002:
                ds.add(copy.deepcopy(elem))  # never alias the template's elements
    now = _dt.datetime.now()
    defaults = {
        "PatientName": "PHANTOM^SYNTHETIC",
        "PatientID": "PHANTOM",
        "StudyInstanceUID": generate_uid(),
        "StudyDate": now.strftime("%Y%m%d"),
        "StudyTime": now.strftime("%H%M%S"),
        "Modality": "DX",
        "ViewPosition": "PA",
        "BodyPartExamined": "CHEST",
        "Manufacturer": "medgen",
    }
    for k, v in defaults.items():
        if k not in ds:
            setattr(ds, k, v)
    ds.SOPClassUID = DX_SOP_CLASS
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID = generate_uid()
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = int(stored.shape[0]), int(stored.shape[1])
    ds.BitsAllocated = 16
    ds.BitsStored = int(bits_stored)
    ds.HighBit = int(bits_stored) - 1
    ds.PixelRepresentation = 0
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "US"
    if pixel_spacing_mm is not None:
        row_mm, col_mm = (
            (pixel_spacing_mm, pixel_spacing_mm) if np.isscalar(pixel_spacing_mm) else pixel_spacing_mm
        )
        spacing = [f"{float(row_mm):.6g}", f"{float(col_mm):.6g}"]
        ds.PixelSpacing = spacing
        ds.ImagerPixelSpacing = spacing
    for k, v in (tags or {}).items():
        setattr(ds, k, v)
    ds.PixelData = stored.tobytes()

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if _pydicom_major() >= 3:
        ds.save_as(path, enforce_file_format=True)
    else:  # pydicom 2.4: encoding is declared on the dataset and write_like_original=False adds the meta
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(str(path), write_like_original=False)
    return path


def read_dicom01(path: str | Path) -> np.ndarray:
    """Read a DICOM written by :func:`write_dicom` back to [0, 1] MONOCHROME2 floats (used by tests/tools)."""
    import pydicom

    ds = pydicom.dcmread(str(path))
    top = (1 << int(ds.BitsStored)) - 1
    arr = ds.pixel_array.astype(np.float64) / top
    return (1.0 - arr if ds.PhotometricInterpretation == "MONOCHROME1" else arr).astype(np.float32)
