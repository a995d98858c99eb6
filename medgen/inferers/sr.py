"""Super-resolve radiograph files: PNG, NIfTI or DICOM in, the same format out (diffusers-style pipeline).

``SuperResolutionInferer(network)(path_in, path_out)`` reads the image, maps its stored values to [0, 1],
upscales it whole or tile by tile, and writes the result in the input's format and bit depth:

* PNG: same mode (8- or 16-bit grey).
* NIfTI: same dtype; the affine's in-plane voxel size is divided by the scale, the origin moved to the centre
  of the first HR pixel; values mapped back to the input's own min..max.
* DICOM: every tag of the input kept (patient, study, window...), new SOP Instance UID and Series Instance UID,
  Rows/Columns updated, PixelSpacing (and ImagerPixelSpacing) divided by the scale, ImageType DERIVED, the same
  BitsAllocated/BitsStored/PixelRepresentation and stored-value range; written uncompressed.

Tiling uses MONAI's :class:`~monai.inferers.SlidingWindowInferer`, which detects that the network's output is
``scale`` times its input (``zoom_scale``) and aggregates at HR size. Each tile is weighted by a map that is 1
inside and ~0 in a ``halo`` band at its edge, so seams come from tile centres only (overlap-tile): tiled and
whole-image outputs agree to ~1e-4 and memory is bounded by the tile size, whatever the image size.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.inferers import SlidingWindowInferer
from monai.utils import optional_import
from torch import nn

pydicom, _ = optional_import("pydicom")
nib, _ = optional_import("nibabel")

FORMATS = {".png": "png", ".nii": "nifti", ".gz": "nifti", ".dcm": "dicom", ".dicom": "dicom"}


def detect_format(path: str | Path) -> str:
    """``png``, ``nifti`` or ``dicom`` from the suffix (``.nii.gz`` included) or, failing that, DICOM magic."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt == "nifti" and path.suffix.lower() == ".gz" and not path.name.lower().endswith(".nii.gz"):
        fmt = None
    if fmt is None and path.is_file():
        with open(path, "rb") as f:
            f.seek(128)
            if f.read(4) == b"DICM":
                fmt = "dicom"
    if fmt is None:
        raise ValueError(f"{str(path)!r}: unsupported image format; use .png, .nii/.nii.gz or DICOM (.dcm).")
    return fmt


class SuperResolutionInferer:
    """Upscale images or files with a trained SR network.

    Args:
        network: SR network (LR ``(B, 1, h, w)`` in [0, 1] -> ``(B, 1, h*s, w*s)``); its ``scale`` attribute is
            used unless ``scale`` is given.
        scale: upscaling factor when the network has no ``scale`` attribute.
        tile_size: LR tile side for tiled inference; ``None`` runs the whole image.
        overlap: fraction of the tile shared by neighbours (must exceed ``2 * halo / tile_size``).
        halo: LR pixels at each tile edge that get (almost) no weight in the blend.
        sw_batch_size: tiles per forward pass.
        max_whole_pixels: largest LR image run whole; bigger ones need ``tile_size`` (clear error, no crop).
        device: where the network runs; the HR image is assembled on the CPU.
    """

    def __init__(
        self,
        network: nn.Module,
        scale: int | None = None,
        tile_size: int | None = None,
        overlap: float = 0.25,
        halo: int = 8,
        sw_batch_size: int = 4,
        max_whole_pixels: int = 1024 * 1024,
        device: str | torch.device = "cpu",
    ) -> None:
        self.network = network.to(device).eval()
        self.scale = int(scale or getattr(network, "scale", 0))
        if self.scale < 1:
            raise ValueError("SuperResolutionInferer: the network has no `scale` attribute; pass scale=...")
        self.device = torch.device(device)
        self.tile_size, self.max_whole_pixels = tile_size, max_whole_pixels
        self.sliding = None
        if tile_size is not None:
            if overlap * tile_size < 2 * halo:
                raise ValueError(
                    f"SuperResolutionInferer: overlap={overlap} x tile_size={tile_size} must be >= 2 x halo={halo} "
                    f"so every pixel is covered by some tile centre; raise overlap or tile_size."
                )
            # separable weights: along an image border every tile is in its halo there, and the product
            # still ranks the tile whose *other* axis is central first
            ramp = torch.full((tile_size,), 1e-4)
            ramp[halo : tile_size - halo] = 1.0
            weight = torch.outer(ramp, ramp)
            self.sliding = SlidingWindowInferer(
                roi_size=(tile_size, tile_size),
                sw_batch_size=sw_batch_size,
                overlap=overlap,
                mode="constant",
                padding_mode="replicate",
                sw_device=self.device,
                device=torch.device("cpu"),
            )
            self.sliding.roi_weight_map = weight  # used by __call__ for every full-size tile

    @torch.inference_mode()
    def upscale(self, lr: torch.Tensor) -> torch.Tensor:
        """``(B, 1, h, w)`` in [0, 1] -> ``(B, 1, h*scale, w*scale)`` clipped to [0, 1], on the CPU."""
        if lr.ndim != 4 or lr.shape[1] != 1:
            raise ValueError(f"upscale expects a (batch, 1, height, width) tensor, got {tuple(lr.shape)}.")
        lr = lr.float()
        if self.sliding is None:
            pixels = lr.shape[-2] * lr.shape[-1]
            if pixels > self.max_whole_pixels:
                raise ValueError(
                    f"the LR image is {lr.shape[-2]}x{lr.shape[-1]} ({pixels} pixels), above max_whole_pixels="
                    f"{self.max_whole_pixels} for whole-image inference; set tile_size (e.g. 256) to upscale it "
                    f"in tiles with bounded memory."
                )
            out = self.network(lr.to(self.device)).cpu()
        else:
            out = self.sliding(lr, self.network)
        return out.clamp(0.0, 1.0)

    def __call__(self, path_in: str | Path, path_out: str | Path) -> Path:
        """Super-resolve one file and write it, in the input's format, to ``path_out``."""
        fmt = detect_format(path_in)
        reader, writer = {"png": (_read_png, _write_png), "nifti": (_read_nifti, _write_nifti),
                          "dicom": (_read_dicom, _write_dicom)}[fmt]  # fmt: skip
        image01, ctx = reader(Path(path_in))
        hr = self.upscale(torch.from_numpy(image01)[None, None])[0, 0].numpy()
        path_out = Path(path_out)
        path_out.parent.mkdir(parents=True, exist_ok=True)
        writer(hr, ctx, path_out, self.scale)
        return path_out


# -- PNG -------------------------------------------------------------------------------------------------------
def _read_png(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    from PIL import Image

    with Image.open(path) as im:
        mode = im.mode
        if mode not in ("L", "I;16", "I;16B", "I"):
            raise ValueError(
                f"{str(path)!r}: PNG mode {mode!r} is not single-channel grey; convert it to 8/16-bit grey."
            )
        arr = np.asarray(im)
    peak = 255.0 if mode == "L" else 65535.0
    return (arr.astype(np.float32) / peak), {"mode": mode, "peak": peak}


def _write_png(hr: np.ndarray, ctx: dict[str, Any], path: Path, scale: int) -> None:
    from PIL import Image

    dtype = np.uint8 if ctx["peak"] == 255.0 else np.uint16
    Image.fromarray(np.round(hr * ctx["peak"]).astype(dtype)).save(path)


# -- NIfTI -----------------------------------------------------------------------------------------------------
def _read_nifti(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    img = nib.load(str(path))
    data = np.asanyarray(img.dataobj)
    if data.ndim == 3 and data.shape[2] == 1:
        data = data[..., 0]
    if data.ndim != 2:
        raise ValueError(f"{str(path)!r}: NIfTI shape {data.shape} is not a single 2D image.")
    lo, hi = float(data.min()), float(data.max())
    norm = (data.astype(np.float32) - lo) / (hi - lo) if hi > lo else np.zeros(data.shape, np.float32)
    return norm, {
        "img": img,
        "lo": lo,
        "hi": hi,
        "dtype": data.dtype,
        "ndim": np.asanyarray(img.dataobj).ndim,
    }


def _write_nifti(hr: np.ndarray, ctx: dict[str, Any], path: Path, scale: int) -> None:
    img, dtype = ctx["img"], ctx["dtype"]
    out = hr * (ctx["hi"] - ctx["lo"]) + ctx["lo"]
    if np.issubdtype(dtype, np.integer):
        out = np.round(out)
    out = out.astype(dtype)
    if ctx["ndim"] == 3:
        out = out[..., None]
    # HR voxel i sits at LR coordinate (i + 0.5) / scale - 0.5
    step = np.eye(4)
    step[0, 0] = step[1, 1] = 1.0 / scale
    step[0, 3] = step[1, 3] = (1.0 / scale - 1.0) / 2
    header = img.header.copy()
    nib.save(nib.Nifti1Image(out, img.affine @ step, header), str(path))


# -- DICOM -----------------------------------------------------------------------------------------------------
def _read_dicom(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    ds = pydicom.dcmread(str(path))
    if "PixelData" not in ds:
        raise ValueError(f"{str(path)!r}: DICOM file has no pixel data (not an image).")
    if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1 or int(getattr(ds, "SamplesPerPixel", 1)) != 1:
        raise ValueError(f"{str(path)!r}: only single-frame greyscale DICOM images are supported.")
    arr = ds.pixel_array
    bits = int(ds.BitsStored)
    signed = int(getattr(ds, "PixelRepresentation", 0)) == 1
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    norm = (arr.astype(np.float32) - lo) / (hi - lo)
    inverted = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")) == "MONOCHROME1"
    if inverted:  # the networks learn MONOCHROME2 (bright = dense) radiographs
        norm = 1.0 - norm
    return norm, {"ds": ds, "lo": lo, "hi": hi, "dtype": arr.dtype, "inverted": inverted}


def _scale_spacing(ds: Any, keyword: str, scale: int) -> None:
    if keyword in ds and ds.data_element(keyword).value:
        ds.data_element(keyword).value = [f"{float(v) / scale:.6g}" for v in ds.data_element(keyword).value]


def _write_dicom(hr: np.ndarray, ctx: dict[str, Any], path: Path, scale: int) -> None:
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = copy.deepcopy(ctx["ds"])
    values = 1.0 - hr if ctx["inverted"] else hr
    stored = np.clip(np.round(values * (ctx["hi"] - ctx["lo"]) + ctx["lo"]), ctx["lo"], ctx["hi"])
    stored = stored.astype(ctx["dtype"])
    ds.Rows, ds.Columns = int(stored.shape[0]), int(stored.shape[1])
    for keyword in ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing"):
        _scale_spacing(ds, keyword, scale)
    image_type = list(getattr(ds, "ImageType", ["ORIGINAL", "PRIMARY"]))
    ds.ImageType = ["DERIVED", *image_type[1:]] if image_type else ["DERIVED", "SECONDARY"]
    ds.DerivationDescription = f"Super-resolution x{scale} (medgen)"
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesDescription = f"{getattr(ds, 'SeriesDescription', '')} SR x{scale}".strip()
    for keyword in ("SmallestImagePixelValue", "LargestImagePixelValue"):  # would now be stale
        if keyword in ds:
            del ds[keyword]
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PixelData = stored.tobytes()
    ds["PixelData"].VR = "OW" if int(ds.BitsAllocated) > 8 else "OB"
    ds.save_as(str(path), enforce_file_format=True)


def write_phantom_lr_inputs(folder: str | Path, n: int = 2, hr_size: int = 256, scale: int = 4) -> list[dict]:
    """Write ``n`` LR phantom radiographs (16-bit PNG, ``hr_size / scale`` pixels) for self-contained inference.

    Returns a MONAI datalist ``[{"image": path}, ...]``; used by bundles whose ``dataset_dir`` is null.
    """
    from medgen.data.phantom import render_phantom
    from medgen.data.writers import write_png16
    from medgen.transforms.degradation import downsample

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(n):
        lr = downsample(render_phantom(i, hr_size, seed=1).image, scale)
        items.append({"image": str(write_png16(folder / f"phantom_lr_{i:03d}.png", np.asarray(lr)))})
    return items
