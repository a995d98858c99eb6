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

    Metadata (``img.meta``): ``filename_or_obj``, ``format``, ``reader``, ``spacing`` ((row, col) mm, also the
    affine's ``img.pixdim``; (1, 1) when the file states none, with ``spacing_known`` False; there is no
    ``pixdim`` meta key, which MONAI's spatial transforms rewrite NIfTI-style), ``bits_stored`` (original bit
    depth; 0 for float data), ``photometric_interpretation`` (as stored), ``inverted`` (MONOCHROME1),
    ``original_shape`` / ``spatial_shape``, ``intensity_range`` (the stored values mapped to 0 and 1),
    ``normalize``, ``voi``, ``frame``; for DICOM ``transfer_syntax`` and ``modality``; for PNG/JPEG
    ``file_format`` (``png`` or ``jpeg``) and ``pil_mode``; for NIfTI ``file_format`` ``nifti`` and ``dtype``.
    No patient tags. :class:`SaveRadiograph` writes a result back in the same format from this meta.

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

    def __call__(self, filename: str | Path | np.ndarray | torch.Tensor) -> MetaTensor:
        if isinstance(filename, np.ndarray | torch.Tensor):
            return in_memory_radiograph(filename)
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
            meta["file_format"] = "dicom"
        elif fmt == "pillow":
            meta["file_format"], meta["pil_mode"] = info["file_format"], info["pil_mode"]
        else:
            meta["file_format"], meta["dtype"] = "nifti", info.get("dtype", "")
        return MetaTensor(torch.from_numpy(img[None]), affine=affine, meta=meta)


def in_memory_radiograph(image: np.ndarray | torch.Tensor) -> MetaTensor:
    """An already-decoded image (the phantom's items) as the loader's (1, H, W) float32 ``MetaTensor``.

    Values must already lie in [0, 1] (they are not rescaled: there is no stored bit depth to go by).
    """
    arr = torch.as_tensor(np.asarray(image) if isinstance(image, np.ndarray) else image).float()
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] != 1:
        raise RadiographLoadError(
            f"in-memory image of shape {tuple(arr.shape)}: expected (H, W) or (1, H, W)."
        )
    if arr.numel() and (float(arr.min()) < -1e-6 or float(arr.max()) > 1 + 1e-6):
        raise RadiographLoadError(
            f"in-memory image values {float(arr.min()):g}..{float(arr.max()):g} lie outside [0, 1]; scale it first."
        )
    meta = dict(getattr(image, "meta", {}) or {})
    meta.setdefault("filename_or_obj", "<in-memory>")
    meta.setdefault("format", "array")
    return MetaTensor(arr, meta=meta)


_SUFFIXES = {"png": ".png", "jpeg": ".jpg", "dicom": ".dcm", "nifti": ".nii.gz"}


def _source_name(source: str) -> tuple[str, str]:
    """(stem, suffix) of a source file, ``.nii.gz`` counted as one suffix."""
    name = Path(source).name
    for ext in (".nii.gz", ".nii", ".png", ".jpg", ".jpeg", *_DICOM_SUFFIXES):
        if name.lower().endswith(ext):
            return name[: -len(ext)], name[-len(ext) :]
    return name, ""


class SaveRadiograph(Transform):
    """Write a (1, H, W) [0, 1] image in the format and bit depth of the file it was computed from.

    The source is described by :class:`LoadRadiograph`'s meta (``filename_or_obj``, ``format``,
    ``file_format``, ``pil_mode``, ``bits_stored``, ``intensity_range``, ``voi``, ``inverted``, ``spacing``,
    ``spatial_shape``). The image may have another size than the source (super-resolution): the pixel
    spacing is divided by the size ratio. One writer per format, from :mod:`medgen.transforms.io.writers`:

    * PNG: 8-bit in, 8-bit out; 16-bit in, 16-bit out (``intensity_range`` inverted, so 12-bit data loaded
      with ``bit_depth=12`` stays 12-bit). A grey image stored as RGB/RGBA/LA/palette is written as an 8-bit
      single-channel grey PNG (same values, one channel).
    * JPEG: 8-bit grey baseline JPEG at ``jpeg_quality`` (95: about one grey level of error). JPEG is kept
      rather than switching to PNG so that the output has the type its name and the user's tools expect.
    * DICOM: every tag of the source kept, its pixel encoding too, [0, 1] mapped back through its Modality
      and VOI LUTs (:func:`medgen.transforms.io.writers.write_dicom` with ``source=``); MONOCHROME1 stays MONOCHROME1.
    * NIfTI: the source's header and dtype, the affine's in-plane voxel size divided by the size ratio.

    Args:
        output_dir: folder for outputs named ``<source stem>_<output_postfix><source suffix>`` when
            ``__call__`` gets no ``filename``.
        output_postfix: appended to the source's stem ("" keeps the name).
        jpeg_quality: JPEG quality for JPEG sources.
    """

    def __init__(
        self, output_dir: str | Path = ".", output_postfix: str = "sr", jpeg_quality: int = 95
    ) -> None:
        self.output_dir = Path(output_dir)
        self.output_postfix = output_postfix
        self.jpeg_quality = int(jpeg_quality)

    def output_path(self, meta: dict[str, Any]) -> Path:
        """Where an image computed from the file described by ``meta`` is written."""
        stem, suffix = _source_name(str(meta["filename_or_obj"]))
        fmt = _file_format(meta)
        if fmt == "dicom" and suffix.lower() not in _DICOM_SUFFIXES:
            suffix = ".dcm"
        post = f"_{self.output_postfix}" if self.output_postfix else ""
        return self.output_dir / f"{stem}{post}{suffix or _SUFFIXES[fmt]}"

    def __call__(
        self,
        img: torch.Tensor | np.ndarray,
        meta: dict[str, Any] | None = None,
        filename: str | Path | None = None,
    ) -> Path:
        """Write ``img`` ((1, H, W) or (H, W), [0, 1]) computed from the source in ``meta`` (default: img.meta)."""
        meta = dict(meta if meta is not None else getattr(img, "meta", None) or {})
        if "filename_or_obj" not in meta or "intensity_range" not in meta:
            raise ValueError(
                "SaveRadiograph needs the LoadRadiograph meta of the source image (filename_or_obj, format, "
                "intensity_range, ...): pass meta=source.meta, or in a dictionary pipeline set source_key to "
                "the key LoadRadiographd filled."
            )
        arr = img.detach().cpu().numpy() if isinstance(img, torch.Tensor) else np.asarray(img)
        arr = np.asarray(arr, dtype=np.float64)
        if arr.ndim == 3 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim != 2:
            raise ValueError(f"SaveRadiograph expects a (1, H, W) or (H, W) image, got shape {arr.shape}.")
        path = Path(filename) if filename is not None else self.output_path(meta)
        return write_like_source(path, arr, meta, jpeg_quality=self.jpeg_quality)


def _file_format(meta: dict[str, Any]) -> str:
    fmt = str(meta.get("file_format") or meta.get("format", ""))
    if fmt == "png/jpeg":  # meta of an older LoadRadiograph
        fmt = "jpeg" if str(meta["filename_or_obj"]).lower().endswith((".jpg", ".jpeg")) else "png"
    if fmt not in _SUFFIXES:
        raise ValueError(
            f"SaveRadiograph: unknown source format {fmt!r}; expected one of {sorted(_SUFFIXES)}."
        )
    return fmt


def write_like_source(path: Path, arr01: np.ndarray, meta: dict[str, Any], jpeg_quality: int = 95) -> Path:
    """Write a (H, W) [0, 1] image with the writer of the source's format (see :class:`SaveRadiograph`)."""
    from medgen.transforms.io import writers

    fmt = _file_format(meta)
    source = str(meta["filename_or_obj"])
    if fmt == "dicom":
        return writers.write_dicom(path, arr01, source=source, source_meta=meta)
    if fmt == "nifti":
        return writers.write_nifti(path, arr01, source=source, source_meta=meta)
    in_shape = np.asarray(meta.get("spatial_shape", arr01.shape), dtype=np.float64)
    zoom = np.asarray(arr01.shape, dtype=np.float64) / in_shape
    spacing = np.asarray(meta["spacing"], dtype=np.float64) / zoom if meta.get("spacing_known") else None
    value_range = tuple(float(v) for v in np.asarray(meta["intensity_range"]))
    if fmt == "jpeg":
        return writers.write_jpeg(
            path, arr01, jpeg_quality, value_range=value_range, pixel_spacing_mm=spacing
        )
    bits = 16 if str(meta.get("pil_mode", "")).startswith("I") or int(meta.get("bits_stored", 8)) > 8 else 8
    return writers.write_png(path, arr01, bits, value_range=value_range, pixel_spacing_mm=spacing)


def load_radiographs(filenames: Sequence[str | Path], **kwargs: Any) -> list[MetaTensor]:
    """Load several files with one :class:`LoadRadiograph` configuration (convenience for scripts)."""
    loader = LoadRadiograph(**kwargs)
    return [loader(f) for f in filenames]
