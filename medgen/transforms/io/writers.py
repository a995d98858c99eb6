"""Image writers shared by medgen: PNG (8/16-bit), JPEG, DICOM and NIfTI; one function per format.

Arrays are 2-D float images in [0, 1] laid out (rows, columns). Values outside [0, 1] or non-finite values
are refused rather than clipped, so a bad pipeline stage is noticed where it happens.

:func:`write_dicom` and :func:`write_nifti` either make a new file (phantoms, synthetic data) or, with
``source=``, write an image *derived from* a file that :class:`~medgen.transforms.io.LoadRadiograph` read
(e.g. its super-resolved version): every header field of the source is kept, the pixel encoding too, and
[0, 1] is mapped back to stored values exactly as the loader mapped them (its ``meta`` says how); the
spacing follows the size change. :class:`~medgen.transforms.io.SaveRadiograph` picks the writer from the meta.
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


def _pair(value: float | tuple[float, float]) -> tuple[float, float]:
    return (float(value), float(value)) if np.isscalar(value) else (float(value[0]), float(value[1]))


def _to_levels(a: np.ndarray, bits: int, value_range: tuple[float, float] | None) -> np.ndarray:
    """[0, 1] -> integer levels ``lo + a * (hi - lo)`` (default 0..2**bits - 1), in the container dtype."""
    top = 2**bits - 1
    lo, hi = (0.0, float(top)) if value_range is None else (float(value_range[0]), float(value_range[1]))
    out = np.clip(np.round(lo + a * (hi - lo)), 0, top)
    return out.astype(np.uint8 if bits == 8 else np.uint16)


def _dpi(pixel_spacing_mm: float | tuple[float, float] | None) -> dict[str, Any]:
    if pixel_spacing_mm is None:
        return {}
    row_mm, col_mm = _pair(pixel_spacing_mm)
    return {"dpi": (25.4 / col_mm, 25.4 / row_mm)}  # dpi is (x, y), what LoadRadiograph reads back


def write_png(
    path: str | Path,
    array01: np.ndarray,
    bit_depth: int = 16,
    value_range: tuple[float, float] | None = None,
    pixel_spacing_mm: float | tuple[float, float] | None = None,
    text: Mapping[str, str] | None = None,
) -> Path:
    """Write a [0, 1] image as an 8- or 16-bit greyscale PNG.

    Args:
        bit_depth: 8 (mode ``L``) or 16 (``I;16``).
        value_range: the levels that 0 and 1 map to (default 0 and ``2**bit_depth - 1``), e.g. (0, 4095) for
            12-bit data in a 16-bit PNG: the inverse of LoadRadiograph's ``intensity_range``.
        pixel_spacing_mm: (row, column) spacing, stored as DPI in the pHYs chunk; None writes none.
        text: ``{keyword: value}`` text chunks (tEXt; iTXt for values outside Latin-1), e.g. ``Software``.
    """
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    if bit_depth not in (8, 16):
        raise ValueError(f"write_png({path}): bit_depth={bit_depth}; use 8 or 16")
    a = _check01(array01, path, "write_png")
    info = None
    if text:
        info = PngInfo()
        for key, value in text.items():
            info.add_text(str(key), str(value))  # PIL falls back to iTXt for non-Latin-1 values
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_to_levels(a, bit_depth, value_range)).save(
        path, format="PNG", pnginfo=info, **_dpi(pixel_spacing_mm)
    )
    return path


def write_png16(path: str | Path, array01: np.ndarray) -> Path:
    """Write a [0, 1] image as a 16-bit greyscale PNG (value * 65535, rounded); see :func:`write_png`."""
    return write_png(path, array01, bit_depth=16)


def write_jpeg(
    path: str | Path,
    array01: np.ndarray,
    quality: int = 95,
    value_range: tuple[float, float] | None = None,
    pixel_spacing_mm: float | tuple[float, float] | None = None,
) -> Path:
    """Write a [0, 1] image as an 8-bit greyscale baseline JPEG (``quality`` 95: errors of about 1 level).

    ``value_range`` and ``pixel_spacing_mm`` as in :func:`write_png`.
    """
    from PIL import Image

    a = _check01(array01, path, "write_jpeg")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_to_levels(a, 8, value_range)).save(
        path, format="JPEG", quality=int(quality), subsampling=0, **_dpi(pixel_spacing_mm)
    )
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
    path: str | Path,
    array01: np.ndarray,
    pixel_spacing_mm: float | tuple[float, float] = 1.0,
    source: str | Path | None = None,
    source_meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write a [0, 1] image as float32 NIfTI with the spacing in the affine (or derived from ``source``).

    The array is stored transposed, (columns, rows), so the first NIfTI axis is image x; this is the layout
    that MONAI's ``LoadImage`` returns for PNG and DICOM too. ``nib.load(p).get_fdata()[..., 0].T`` or
    ``np.asarray(img.dataobj).T`` gives the (rows, columns) image back.

    With ``source`` (a NIfTI file LoadRadiograph read; ``source_meta`` its meta): the source's header and data
    type are kept, [0, 1] maps back to its ``intensity_range`` (rounded for integer types), and the affine's
    in-plane voxel size is divided by the size ratio, the origin moved to the centre of the first new voxel.
    ``pixel_spacing_mm`` is then ignored.
    """
    import nibabel as nib

    a = _check01(array01, path, "write_nifti")
    if source is not None:
        return _write_nifti_derived(nib, Path(path), a, Path(source), dict(source_meta or {}))
    a = a.astype(np.float32)
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


def _write_nifti_derived(nib: Any, path: Path, a: np.ndarray, source: Path, meta: dict[str, Any]) -> Path:
    src = nib.load(str(source))
    loaded = np.asanyarray(src.dataobj)
    lo, hi = (float(v) for v in meta.get("intensity_range", (float(loaded.min()), float(loaded.max()))))
    out = (lo + a * (hi - lo)).T  # (rows, cols) -> NIfTI (x, y)
    if loaded.dtype.kind in "iu":
        info = np.iinfo(loaded.dtype)
        out = np.clip(np.round(out), info.min, info.max)
    out = out.astype(loaded.dtype)
    if loaded.ndim == 3 and loaded.shape[2] == 1:
        out = out[..., None]
    zoom_x, zoom_y = out.shape[0] / src.shape[0], out.shape[1] / src.shape[1]
    # new voxel i sits at source voxel coordinate (i + 0.5) / zoom - 0.5
    step = np.eye(4)
    step[0, 0], step[1, 1] = 1.0 / zoom_x, 1.0 / zoom_y
    step[0, 3], step[1, 3] = (1.0 / zoom_x - 1.0) / 2, (1.0 / zoom_y - 1.0) / 2
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(out, src.affine @ step, src.header.copy()), str(path))
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
    source: Any | None = None,
    source_meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write a [0, 1] image as an uncompressed DICOM DX file (BitsAllocated 16, ``bits_stored`` bits).

    With ``source`` (a DICOM path or ``pydicom.Dataset`` that LoadRadiograph read; ``source_meta`` its meta)
    the file is a *derived* image of it instead: see :func:`_write_dicom_derived`. ``template``,
    ``photometric`` and ``bits_stored`` are then taken from the source; ``tags`` still apply last.

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
    if source is not None:
        return _write_dicom_derived(Path(path), a, source, dict(source_meta or {}), pixel_spacing_mm, tags)
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

    return _save_dicom(ds, Path(path))


def _save_dicom(ds: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if _pydicom_major() >= 3:
        ds.save_as(path, enforce_file_format=True)
    else:  # pydicom 2.4: encoding is declared on the dataset and write_like_original=False adds the meta
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(str(path), write_like_original=False)
    return path


def _write_dicom_derived(
    path: Path,
    a: np.ndarray,
    source: Any,
    meta: dict[str, Any],
    pixel_spacing_mm: float | tuple[float, float] | None,
    tags: Mapping[str, Any] | None,
) -> Path:
    """A derived image of ``source``: every tag kept, same pixel encoding, [0, 1] mapped back through its LUTs.

    Kept: patient, study, equipment, window/VOI and rescale tags, SOP Class, BitsAllocated/BitsStored/HighBit/
    PixelRepresentation, PhotometricInterpretation (MONOCHROME1 values are inverted back). Changed: new SOP
    Instance UID and Series Instance UID, Rows/Columns, PixelSpacing, ImagerPixelSpacing and
    NominalScannedPixelSpacing divided by the size ratio (or set from ``pixel_spacing_mm``), ImageType
    DERIVED, DerivationDescription, SeriesDescription, written uncompressed (Explicit VR Little Endian).
    Stored values are :func:`medgen.transforms.io.dicom.unit_to_stored` of the image under the source meta's
    ``intensity_range``, ``voi`` and ``inverted`` (LoadRadiograph's defaults when ``meta`` is empty).
    Colour-encoded grey sources are written as single-sample MONOCHROME2; one frame of a multi-frame
    source as a single-frame file.
    """
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from medgen.transforms.io.dicom import unit_to_stored  # same package

    if isinstance(source, (str, Path)):
        ds = pydicom.dcmread(str(source), force=True)
    else:
        ds = copy.deepcopy(source)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    pi = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    inverted = bool(meta.get("inverted", pi == "MONOCHROME1" and samples == 1))
    stored = unit_to_stored(ds, a, meta.get("intensity_range"), str(meta.get("voi", "none")), inverted)
    zoom = (stored.shape[0] / int(ds.Rows), stored.shape[1] / int(ds.Columns))
    ds.Rows, ds.Columns = int(stored.shape[0]), int(stored.shape[1])
    for keyword in ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing"):
        if keyword in ds and ds.data_element(keyword).value:
            if pixel_spacing_mm is not None:
                ds.data_element(keyword).value = [f"{v:.6g}" for v in _pair(pixel_spacing_mm)]
            else:
                old = [float(v) for v in ds.data_element(keyword).value]
                ds.data_element(keyword).value = [f"{old[0] / zoom[0]:.6g}", f"{old[1] / zoom[1]:.6g}"]
    if samples > 1:
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    for keyword in (
        "PlanarConfiguration",
        "NumberOfFrames",
        "SmallestImagePixelValue",
        "LargestImagePixelValue",
    ):
        if keyword in ds and (keyword != "PlanarConfiguration" or samples > 1):
            del ds[keyword]  # stale for the new pixels
    image_type = list(ds.get("ImageType", None) or [])
    ds.ImageType = ["DERIVED", *image_type[1:]] if image_type else ["DERIVED", "SECONDARY"]
    ratio = "x".join(f"{z:g}" for z in sorted(set(zoom)))
    ds.DerivationDescription = f"Super-resolution x{ratio} (medgen)"
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesDescription = f"{ds.get('SeriesDescription', '')} SR x{ratio}".strip()
    if getattr(ds, "file_meta", None) is None:
        ds.file_meta = FileMetaDataset()
    if "SOPClassUID" in ds:
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    for k, v in (tags or {}).items():
        setattr(ds, k, v)
    ds.PixelData = stored.tobytes()
    ds["PixelData"].VR = "OW" if int(ds.BitsAllocated) > 8 else "OB"
    if hasattr(ds, "preamble") and ds.preamble is None:
        ds.preamble = b"\0" * 128
    return _save_dicom(ds, path)


def read_dicom01(path: str | Path) -> np.ndarray:
    """Read a DICOM written by :func:`write_dicom` back to [0, 1] MONOCHROME2 floats (used by tests/tools)."""
    import pydicom

    ds = pydicom.dcmread(str(path))
    top = (1 << int(ds.BitsStored)) - 1
    arr = ds.pixel_array.astype(np.float64) / top
    return (1.0 - arr if ds.PhotometricInterpretation == "MONOCHROME1" else arr).astype(np.float32)
