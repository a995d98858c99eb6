"""DICOM decoding for :class:`~medgen.transforms.io.array.LoadRadiograph` (pydicom by default, ITK on request).

Returns display-ready intensities before scaling to [0, 1]: the Modality LUT (RescaleSlope/Intercept or a
Modality LUT Sequence) is applied, then the VOI LUT or window centre/width when present, with pydicom's own
``apply_modality_lut`` / ``apply_voi_lut``. The value range those steps can produce is returned with the
pixels so that scaling to [0, 1] follows the stored bit depth, not the content of one image.

pydicom and ITK are imported inside the functions so that ``import medgen`` stays light. Only pydicom APIs
that exist in both 2.4 and 3.x are used (``dcmread(..., force=)``, ``pixel_array``, ``apply_modality_lut``,
``apply_voi_lut``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medgen.transforms.io.errors import RadiographLoadError

DICOM_READERS = ("pydicom", "itk")

# Which Python package decodes each compressed transfer syntax through pydicom (pydicom 3 pixel decoders).
_DECODERS = {
    "1.2.840.10008.1.2.5": "pydicom's RLE decoder (numpy) or pylibjpeg-rle: pip install pylibjpeg pylibjpeg-rle",
    "1.2.840.10008.1.2.4.50": "pylibjpeg-libjpeg or Pillow: pip install pylibjpeg pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.51": "pylibjpeg-libjpeg: pip install pylibjpeg pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.57": "pylibjpeg-libjpeg: pip install pylibjpeg pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.70": "pylibjpeg-libjpeg: pip install pylibjpeg pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.80": "pylibjpeg-libjpeg or pyjpegls: pip install pylibjpeg pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.81": "pylibjpeg-libjpeg or pyjpegls: pip install pylibjpeg pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.90": "pylibjpeg-openjpeg: pip install pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.91": "pylibjpeg-openjpeg: pip install pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.201": "pylibjpeg-openjpeg >= 2: pip install -U pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.202": "pylibjpeg-openjpeg >= 2: pip install -U pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.203": "pylibjpeg-openjpeg >= 2: pip install -U pylibjpeg pylibjpeg-openjpeg",
}
_NO_DECODER = (
    "no pydicom decoder plugin is known for it: transcode the file to Explicit VR Little Endian "
    "(e.g. `gdcmconv --raw in.dcm out.dcm` or dcmtk `dcmdjpeg`)"
)
_NATIVE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}


def _lut_functions() -> tuple[Any, Any]:
    """``apply_modality_lut`` and ``apply_voi_lut`` from pydicom 3 (``pydicom.pixels``) or 2.4."""
    try:
        from pydicom.pixels import apply_modality_lut, apply_voi_lut
    except ImportError:  # pydicom < 3
        from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut
    return apply_modality_lut, apply_voi_lut


def transfer_syntax(ds: Any) -> tuple[str, str]:
    """(UID, name) of a dataset's transfer syntax; ``("", "unknown")`` when the file meta lacks it."""
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if uid is None:
        return "", "unknown (no TransferSyntaxUID in the file meta)"
    return str(uid), getattr(uid, "name", str(uid))


def decoder_hint(uid: str) -> str:
    """The package that decodes transfer syntax ``uid`` through pydicom, as an install hint."""
    return _DECODERS.get(uid, _NO_DECODER)


def read_header(path: Path) -> Any:
    """Read a DICOM dataset with pydicom; unreadable or truncated headers raise naming the file."""
    import pydicom

    try:
        return pydicom.dcmread(str(path), force=True)
    except Exception as err:  # pydicom raises many types for broken files; all mean "not readable"
        raise RadiographLoadError(
            f"{path}: cannot be read as DICOM ({type(err).__name__}: {err}). The file is truncated or not "
            "DICOM; re-export or re-download it."
        ) from err


def _expected_pixel_bytes(ds: Any) -> int:
    """Bytes of native (uncompressed) pixel data that Rows x Columns x BitsAllocated x samples x frames need."""
    bits = int(ds.get("BitsAllocated", 0) or 0)
    n = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1) or 1)
    n *= int(ds.get("NumberOfFrames", 1) or 1)
    return (n * bits + 7) // 8


def _check_image(path: Path, ds: Any) -> None:
    """Refuse empty/truncated files, datasets without pixel data (structured reports, RT plans) and palettes."""
    size = path.stat().st_size if path.is_file() else -1
    if size == 0:
        raise RadiographLoadError(
            f"{path}: empty DICOM file (0 bytes); the copy or download failed. Re-export or re-download it."
        )
    if "PixelData" not in ds:
        sop = ds.get("SOPClassUID") or getattr(
            getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None
        )
        image_class = "Image Storage" in str(getattr(sop, "name", ""))  # e.g. "MR Image Storage"
        if len(ds) == 0 or image_class or ("Rows" in ds and "Columns" in ds):
            raise RadiographLoadError(
                f"{path}: truncated DICOM file ({size} bytes): it ends before its pixel data"
                + (" (no data set after the file meta)" if len(ds) == 0 else "")
                + ". Re-export or re-download it."
            )
        sop_name = getattr(sop, "name", sop) if sop is not None else "unknown"
        raise RadiographLoadError(
            f"{path}: DICOM without pixel data (Modality={ds.get('Modality', '?')}, SOP Class {sop_name}); it "
            "is not an image (e.g. a structured report or RT plan). Remove it from the image list, or use "
            "medgen.data.read_dicom_folder, which lists only image series."
        )
    uid, _ = transfer_syntax(ds)
    if uid in _NATIVE and all(t in ds for t in ("Rows", "Columns", "BitsAllocated")):
        have, need = len(ds.PixelData), _expected_pixel_bytes(ds)
        if have < need:
            raise RadiographLoadError(
                f"{path}: truncated DICOM file: pixel data holds {have} bytes but Rows x Columns x BitsAllocated "
                f"({ds.Rows} x {ds.Columns} x {ds.BitsAllocated} bits"
                + (
                    f" x {ds.get('SamplesPerPixel')} samples"
                    if int(ds.get("SamplesPerPixel", 1) or 1) > 1
                    else ""
                )
                + (
                    f" x {ds.get('NumberOfFrames')} frames"
                    if int(ds.get("NumberOfFrames", 1) or 1) > 1
                    else ""
                )
                + f") need {need}. Re-export or re-download it."
            )
    pi = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if pi == "PALETTE COLOR":
        raise RadiographLoadError(
            f"{path}: colour DICOM (PhotometricInterpretation=PALETTE COLOR); radiograph loaders read grayscale "
            "only. Convert it to MONOCHROME2 first, or read colour images with monai.transforms.LoadImage."
        )


def _select_frame(
    path: Path, arr: np.ndarray, n_frames: int, frame: int | None, frame_axis: int
) -> np.ndarray:
    if n_frames <= 1:
        if frame not in (None, 0):
            raise RadiographLoadError(f"{path}: frame={frame} requested but the file holds a single frame.")
        return arr
    if frame is None:
        raise RadiographLoadError(
            f"{path}: multi-frame DICOM ({n_frames} frames); a radiograph is one frame. Pass frame=<index> "
            f"(0..{n_frames - 1}) to LoadRadiograph to pick one."
        )
    if not -n_frames <= frame < n_frames:
        raise RadiographLoadError(
            f"{path}: frame={frame} is out of range for {n_frames} frames (0..{n_frames - 1})."
        )
    return np.take(arr, frame, axis=frame_axis)


def _grey_from_colour(arr: np.ndarray, pi: str) -> np.ndarray | None:
    """The single channel of a colour-encoded grey image, or None when the image is truly colour."""
    if np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2]):
        return arr[..., 0]
    # pydicom 2.x may leave YBR data unconverted: grey in YBR has both chroma channels at mid-level
    mid = 2 ** (arr.dtype.itemsize * 8 - 1) if arr.dtype.kind == "u" else 128
    if pi.startswith("YBR") and (arr[..., 1] == mid).all() and (arr[..., 2] == mid).all():
        return arr[..., 0]
    return None


def _decode_pydicom(path: Path, ds: Any) -> np.ndarray:
    uid, name = transfer_syntax(ds)
    try:
        return np.asarray(ds.pixel_array)
    except Exception as err:  # decoders raise RuntimeError/NotImplementedError/ValueError
        if uid in _NATIVE or not uid:
            raise RadiographLoadError(
                f"{path}: pixel data cannot be read (transfer syntax {uid or '?'} {name}): {err}. The file is "
                "probably truncated or its image header (Rows, Columns, BitsAllocated) is wrong; re-export it."
            ) from err
        raise RadiographLoadError(
            f"{path}: cannot decode pixel data compressed with transfer syntax {uid} ({name}). Decoder: "
            f"{decoder_hint(uid)}; or try reader='itk'. pydicom said: {err}"
        ) from err


def _decode_itk(path: Path, ds: Any) -> np.ndarray:
    """Pixels through MONAI's ``ITKReader`` (GDCM), already Modality-LUT rescaled, as (H, W[, frames]).

    ``ITKReader`` is called directly rather than through ``LoadImage(reader="ITKReader")`` because
    ``LoadImage`` falls back to its other readers when the named one fails, which would hide ITK's error.
    """
    from monai.data import ITKReader
    from monai.utils import OptionalImportError

    uid, name = transfer_syntax(ds)
    try:
        reader = ITKReader()
        arr, _ = reader.get_data(reader.read(str(path)))
    except OptionalImportError as err:
        raise RadiographLoadError(f"{path}: reader='itk' needs ITK: pip install itk-io ({err}).") from err
    except Exception as err:  # ITK raises RuntimeError / itk-specific types for undecodable files
        raise RadiographLoadError(
            f"{path}: ITK cannot decode this file (transfer syntax {uid or '?'} {name}): {err}. "
            "Try reader='pydicom' (decoder for this syntax: " + decoder_hint(uid) + ")."
        ) from err
    arr = np.asarray(arr)
    # ITKReader returns (x, y[, frame]) = (W, H[, N]); radiographs are handled row-major (H, W)
    arr = np.swapaxes(arr, 0, 1)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    return arr


def _stored_range(ds: Any) -> tuple[float, float]:
    bits = int(ds.BitsStored)
    if int(ds.get("PixelRepresentation", 0)) == 1:
        return -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1
    return 0.0, 2.0**bits - 1


def _modality_range(ds: Any) -> tuple[float, float]:
    """Range of values the Modality LUT can produce from BitsStored-bit data (same rule as pydicom's windowing)."""
    seq = ds.get("ModalityLUTSequence")
    if seq:
        return 0.0, 2.0 ** int(seq[0].LUTDescriptor[2]) - 1
    lo, hi = _stored_range(ds)
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is not None and intercept is not None:
        lo, hi = sorted((lo * float(slope) + float(intercept), hi * float(slope) + float(intercept)))
    return lo, hi


def _voi_kind(ds: Any) -> str | None:
    if ds.get("VOILUTSequence"):
        return "voi_lut"
    if "WindowCenter" in ds and "WindowWidth" in ds:
        return "window"
    return None


def _apply_luts(
    arr: np.ndarray, ds: Any, voi: bool, modality_applied: bool = False
) -> tuple[np.ndarray, tuple[float, float], str | None]:
    """Modality LUT then (with ``voi``) VOI LUT / window: (values, (lo, hi) they span, VOI kind or None).

    Colour-encoded grey (SamplesPerPixel > 1) gets no LUT: its range is the BitsStored range.
    """
    samples = int(ds.get("SamplesPerPixel", 1))
    apply_modality_lut, apply_voi_lut = _lut_functions()
    if samples == 1 and not modality_applied:
        arr = apply_modality_lut(arr, ds)
    lo, hi = _modality_range(ds) if samples == 1 else (0.0, 2.0 ** int(ds.BitsStored) - 1)
    kind = _voi_kind(ds) if (voi and samples == 1) else None
    if kind is not None:
        arr = apply_voi_lut(np.asarray(arr), ds, index=0)
        if kind == "voi_lut":
            lo, hi = 0.0, 2.0 ** int(ds.VOILUTSequence[0].LUTDescriptor[2]) - 1
        # windowing output spans the Modality LUT range (pydicom's y_min..y_max), so lo/hi stay
    return np.asarray(arr), (float(lo), float(hi)), kind


def stored_dtype(ds: Any) -> np.dtype:
    """numpy dtype of the stored pixel values (BitsAllocated 8/16/32, PixelRepresentation)."""
    bits = int(ds.get("BitsAllocated", 16))
    if bits not in (8, 16, 32):
        raise RadiographLoadError(f"BitsAllocated={bits} is not supported for writing; use 8, 16 or 32.")
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    return np.dtype(f"{'i' if signed else 'u'}{bits // 8}")


def unit_to_stored(
    ds: Any, values01: np.ndarray, intensity_range: Any, voi: str = "none", inverted: bool = False
) -> np.ndarray:
    """Invert :func:`read_dicom` + LoadRadiograph's scaling: [0, 1] values back to ``ds``'s stored values.

    The forward mapping (Modality LUT, then the VOI step named by ``voi`` as recorded in the loader's meta,
    then ``(v - lo) / (hi - lo)`` with ``intensity_range``, then ``1 - x`` for MONOCHROME1) is evaluated by
    the same code on every possible stored value (at most 2**16 of them) and inverted by interpolation, so
    any rescale, Modality LUT, window (linear, linear exact, sigmoid) or VOI LUT round-trips consistently.
    Values the window saturated (below/above it) come back at the window's edge, which displays the same.

    Raises:
        RadiographLoadError: the LUT chain is not monotonic, so it cannot be inverted.
    """
    dtype = stored_dtype(ds)
    s_lo, s_hi = _stored_range(ds)
    if s_hi - s_lo > 2**16:
        raise RadiographLoadError(f"BitsStored={ds.BitsStored} > 16 is not supported for writing.")
    ramp = np.arange(int(s_lo), int(s_hi) + 1, dtype=np.int64)
    grey = int(ds.get("SamplesPerPixel", 1)) > 1
    display = ramp.astype(np.float64) if grey else None
    if display is None:
        display, _, _ = _apply_luts(ramp.astype(dtype), ds, voi != "none")
        display = display.astype(np.float64)
    lo, hi = (float(v) for v in np.asarray(intensity_range, dtype=np.float64))
    x = np.clip(np.asarray(values01, dtype=np.float64), 0.0, 1.0)
    target = lo + (1.0 - x if inverted else x) * (hi - lo)
    if display[-1] < display[0]:
        display, ramp = display[::-1], ramp[::-1]
    if (np.diff(display) < -1e-9).any():
        raise RadiographLoadError(
            "the file's Modality/VOI LUT is not monotonic, so [0, 1] values cannot be mapped back to stored "
            "values; load it with voi=False or write another format."
        )
    levels, first, counts = np.unique(display, return_index=True, return_counts=True)
    pick = first + (counts - 1) // 2  # a plateau's middle stored value ...
    pick[0] = first[0] + counts[0] - 1  # ... but next to the window for the saturated ends
    pick[-1] = first[-1]
    stored = np.interp(target, levels, ramp[pick].astype(np.float64))
    return np.clip(np.round(stored), s_lo, s_hi).astype(dtype)


def read_dicom(
    path: Path, frame: int | None = None, voi: bool = True, reader: str = "pydicom"
) -> dict[str, Any]:
    """Decode one DICOM radiograph to Modality/VOI-LUT values and the range that maps to [0, 1].

    Args:
        path: the DICOM file.
        frame: frame index of a multi-frame file (required for those, refused for single-frame files > 0).
        voi: apply the VOI LUT Sequence or the first window centre/width when the file has one.
        reader: ``"pydicom"`` (pixel decoders of pydicom / pylibjpeg) or ``"itk"`` (MONAI ``ITKReader``).

    Returns:
        dict with ``array`` (float64, (H, W)), ``range`` ((lo, hi): the values that map to 0 and 1),
        ``bits_stored``, ``photometric_interpretation``, ``spacing`` ((row, col) mm or None),
        ``transfer_syntax``, ``modality``, ``voi`` (which VOI step was applied, or "none"), ``frame``,
        ``n_frames``.
    """
    ds = read_header(path)
    _check_image(path, ds)
    pi = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    samples = int(ds.get("SamplesPerPixel", 1))
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    uid, ts_name = transfer_syntax(ds)
    for tag in ("BitsStored", "Rows", "Columns"):
        if tag not in ds:
            raise RadiographLoadError(f"{path}: DICOM image without {tag}; the image header is incomplete.")

    if reader == "itk":
        if samples > 1:
            raise RadiographLoadError(
                f"{path}: colour DICOM (PhotometricInterpretation={pi}, SamplesPerPixel={samples}); "
                "reader='itk' reads grayscale only. Use reader='pydicom' (grey images stored as RGB are "
                "accepted there) or convert the file to MONOCHROME2."
            )
        arr = _select_frame(path, _decode_itk(path, ds), n_frames, frame, frame_axis=-1).astype(np.float64)
        modality_applied = True  # GDCM applies RescaleSlope/Intercept on read
    else:
        arr = _select_frame(path, _decode_pydicom(path, ds), n_frames, frame, frame_axis=0)
        modality_applied = False
    if samples > 1:
        grey = _grey_from_colour(arr, pi)
        if grey is None:
            raise RadiographLoadError(
                f"{path}: colour DICOM (PhotometricInterpretation={pi}, SamplesPerPixel={samples}) whose "
                "channels differ (it decoded fine, transfer syntax "
                f"{uid} {ts_name}); radiograph loaders read grayscale only. Convert it to MONOCHROME2, or read "
                "colour images with monai.transforms.LoadImage."
            )
        arr, pi = grey, "MONOCHROME2"

    arr, (lo, hi), kind = _apply_luts(arr, ds, voi, modality_applied=modality_applied)
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    return {
        "array": np.asarray(arr, dtype=np.float64),
        "range": (float(lo), float(hi)),
        "bits_stored": int(ds.BitsStored),
        "photometric_interpretation": pi,
        "spacing": (float(spacing[0]), float(spacing[1])) if spacing else None,
        "transfer_syntax": uid,
        "modality": str(ds.get("Modality", "")),
        "voi": kind or "none",
        "frame": frame if n_frames > 1 else 0,
        "n_frames": n_frames,
    }
