"""PNG / JPEG (Pillow) and NIfTI (nibabel) decoding for :class:`~medgen.transforms.io.array.LoadRadiograph`.

Each reader returns the stored integer (or float) values with the range that maps to [0, 1], never a range
measured on the image itself. Pillow and nibabel are imported inside the functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medgen.transforms.io.errors import RadiographLoadError

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_bit_depth(path: Path) -> int | None:
    """Bit depth per sample from a PNG's IHDR chunk (Pillow opens 16-bit grey as mode "I" and hides it)."""
    with open(path, "rb") as f:
        head = f.read(26)
    if head[:8] != _PNG_MAGIC or head[12:16] != b"IHDR":
        return None
    return head[24]


def _grey_or_refuse(path: Path, arr: np.ndarray, mode: str) -> np.ndarray:
    """Grey channel of an RGB(A)/LA image whose colour channels are equal; refuse real colour and transparency."""
    colour = arr[..., :3] if arr.shape[-1] >= 3 else arr[..., :1]
    alpha = arr[..., -1] if arr.shape[-1] in (2, 4) else None
    if alpha is not None and (alpha != alpha.max(initial=0)).any():
        raise RadiographLoadError(
            f"{path}: image mode {mode} has a transparency channel that is not uniform; a radiograph has no "
            "transparency. Flatten the image to grayscale (e.g. PIL `img.convert('L')`) and save it again."
        )
    if colour.shape[-1] == 3 and not (
        np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(colour[..., 0], colour[..., 2])
    ):
        diff = int(np.abs(colour.astype(np.int64) - colour[..., :1]).max())
        raise RadiographLoadError(
            f"{path}: colour image (mode {mode}, channels differ by up to {diff} levels); radiograph loaders read "
            "grayscale only. If it is a radiograph saved in colour, convert it to grayscale "
            "(e.g. PIL `img.convert('L')`) and save it again."
        )
    return colour[..., 0]


def read_pillow(path: Path) -> dict[str, Any]:
    """Read an 8/16-bit grayscale PNG or JPEG (RGB with three equal channels accepted as grayscale).

    Returns:
        dict with ``array`` (stored integer values), ``bits_stored`` (8 or 16: the container depth of the
        file), ``spacing`` ((row, col) mm from the DPI / pHYs chunk, or None), ``photometric_interpretation``,
        ``file_format`` (Pillow's format name, lower case: ``png`` or ``jpeg``) and ``pil_mode`` (e.g. ``L``,
        ``I;16``, ``RGB``).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise RadiographLoadError(
            f"{path}: cannot be read as PNG/JPEG ({err}); the file is truncated or corrupt."
        ) from err
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img)
        depth = png_bit_depth(path) or 16
        if depth > 16 or (mode == "I" and arr.size and (arr.min() < 0 or arr.max() > 65535)):
            raise RadiographLoadError(
                f"{path}: {depth}-bit integer image is not supported; save it as 8- or 16-bit."
            )
        bits = 16
    elif mode == "L":
        arr, bits = np.asarray(img), 8
    elif mode in ("RGB", "RGBA", "LA"):
        arr, bits = _grey_or_refuse(path, np.asarray(img), mode), 8
    elif mode == "P":
        arr, bits = _grey_or_refuse(path, np.asarray(img.convert("RGBA")), "P (palette)"), 8
    else:
        raise RadiographLoadError(
            f"{path}: image mode {mode!r} is not a grayscale radiograph format; save it as 8- or 16-bit "
            "grayscale PNG."
        )
    dpi = img.info.get("dpi")
    spacing = None
    if dpi and all(float(d) > 0 for d in dpi[:2]):
        spacing = (25.4 / float(dpi[1]), 25.4 / float(dpi[0]))  # dpi is (x, y); spacing is (row, col)
    return {
        "array": arr.astype(np.float64),
        "bits_stored": bits,
        "spacing": spacing,
        "photometric_interpretation": "MONOCHROME2",
        "file_format": str(img.format or "png").lower().replace("mpo", "jpeg"),
        "pil_mode": mode,
    }


def read_nifti(path: Path, frame: int | None = None) -> dict[str, Any]:
    """Read a 2D NIfTI image (or one slice of a 3D one with ``frame``).

    NIfTI stores axis 0 as x (columns) and axis 1 as y (rows), MONAI's convention; the array is transposed
    to (rows, columns). Scaling rule (returned as ``range``): ``cal_min``/``cal_max`` when the header sets
    them; else the integer type's full range (uint8: 255, uint16: 65535); float data must already lie in
    [0, 1]. Other cases raise and name the options that resolve them.
    """
    import nibabel as nib

    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except Exception as err:  # nibabel raises several types for broken files
        raise RadiographLoadError(f"{path}: cannot be read as NIfTI ({type(err).__name__}: {err}).") from err
    while data.ndim > 2 and data.shape[-1] == 1:
        data = data[..., 0]
    n_frames = data.shape[-1] if data.ndim == 3 else 1
    if data.ndim == 3:
        if frame is None:
            raise RadiographLoadError(
                f"{path}: 3D NIfTI of shape {data.shape}; a radiograph is 2D. Pass frame=<index> "
                f"(0..{n_frames - 1}) to pick one slice along the last axis."
            )
        if not -n_frames <= frame < n_frames:
            raise RadiographLoadError(f"{path}: frame={frame} is out of range for {n_frames} slices.")
        data = data[..., frame]
    elif data.ndim != 2:
        raise RadiographLoadError(f"{path}: NIfTI of shape {data.shape} is not a 2D image.")
    elif frame not in (None, 0):
        raise RadiographLoadError(f"{path}: frame={frame} requested but the NIfTI image is 2D.")
    data = np.asarray(data).T  # (x, y) -> (rows, cols)
    hdr = img.header
    cal_min, cal_max = float(hdr.get("cal_min", 0) or 0), float(hdr.get("cal_max", 0) or 0)
    zooms = hdr.get_zooms()
    spacing = (float(zooms[1]), float(zooms[0])) if len(zooms) >= 2 else None
    bits: int | None = None
    if cal_max > cal_min:
        rng: tuple[float, float] | None = (cal_min, cal_max)
    elif data.dtype == np.uint8:
        rng, bits = (0.0, 255.0), 8
    elif data.dtype == np.uint16:
        rng, bits = (0.0, 65535.0), 16
    elif data.dtype.kind == "f":
        rng = (0.0, 1.0)
    else:
        rng = None  # signed/wide integers: the bit depth is unknown
    return {
        "array": data.astype(np.float64),
        "range": rng,
        "bits_stored": bits,
        "spacing": spacing,
        "photometric_interpretation": "MONOCHROME2",
        "frame": frame if n_frames > 1 else 0,
        "dtype": str(data.dtype),
    }
