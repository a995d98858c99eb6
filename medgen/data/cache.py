"""Real images for patch training: sizes from file headers, the too-small check, and a RAM-budgeted cache.

The SR bundle's training dataset (:func:`sr_train_dataset`) caches each loaded image once (MONAI
``CacheDataset`` / ``PersistentDataset``) and cuts random patches after the cache; the size checks read file
headers only, so a folder of large radiographs is checked without decoding it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from medgen.data.errors import DataError

logger = logging.getLogger("medgen.data")

CACHE_MODES = ("auto", "memory", "disk", "none")


def image_shape(image: Any) -> tuple[int, int]:
    """(H, W) of an item's ``image``: an array's last two axes, or a file's header (no pixel decoding).

    PNG/JPEG via Pillow (reads the header only), DICOM ``Rows``/``Columns`` (pydicom, stops before pixels),
    NIfTI from nibabel's header (first two axes); anything else is decoded with ``LoadRadiograph``.
    """
    if not isinstance(image, str | Path):
        return int(image.shape[-2]), int(image.shape[-1])
    path = Path(image)
    from medgen.transforms.io.array import detect_format

    try:
        fmt = detect_format(path)
        if fmt == "pillow":
            from PIL import Image

            with Image.open(path) as im:
                w, h = im.size
            return int(h), int(w)
        if fmt == "dicom":
            import pydicom

            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Rows", "Columns"])
            return int(ds.Rows), int(ds.Columns)
        if fmt == "nifti":
            import nibabel

            shape = nibabel.load(str(path)).shape
            return int(shape[0]), int(shape[1])
    except Exception:  # an odd header: the loader decides (and names the file when it cannot read it)
        pass
    from medgen.transforms.io import LoadRadiograph

    img = LoadRadiograph()(path)
    return int(img.shape[-2]), int(img.shape[-1])


def check_sr_images(
    items: Sequence[Mapping[str, Any]], min_size: int, what: str = "training", fix: str = ""
) -> list[tuple[int, int]]:
    """(H, W) of every item; a DataError naming every image smaller than ``min_size`` on either side."""
    shapes = [image_shape(it["image"]) for it in items]
    small = [(it, hw) for it, hw in zip(items, shapes, strict=True) if min(hw) < min_size]
    if small:
        names = [
            f"{it['image'] if isinstance(it['image'], str | Path) else it.get('index', '<array>')} ({h}x{w})"
            for it, (h, w) in small
        ]
        listed = "\n".join(f"  {n}" for n in names[:20]) + (
            f"\n  ... {len(names) - 20} more" if len(names) > 20 else ""
        )
        raise DataError(
            f"{what}: {len(small)} of {len(items)} image(s) are smaller than the {min_size}x{min_size} HR patch "
            f"(lr_patch x scale), e.g. {names[0]}: "
            + (fix or "lower lr_patch (e.g. --set lr_patch=16) or remove such images from dataset_dir")
            + f". All of them:\n{listed}"
        )
    return shapes


def sr_train_dataset(
    data: Sequence[Mapping[str, Any]],
    transform: Any,
    cache: str = "auto",
    cache_rate: float | None = None,
    cache_budget_gb: float = 4.0,
    cache_dir: str | Path | None = None,
    min_size: int | None = None,
    num_workers: int = 0,
) -> Any:
    """The training dataset: loaded images cached in RAM when they fit, random patches cut after the cache.

    ``transform`` must start with the loader (:func:`medgen.engines.sr.sr_patch_transform`); MONAI ``CacheDataset`` caches
    everything up to the first random transform, i.e. the loaded (1, H, W) float32 image, and crops, flips
    and degrades a fresh random patch on every access.

    Args:
        data: training items (file paths or the phantom's arrays).
        transform: the patch transform.
        cache: ``"auto"``: estimate the float32 size of the loaded images (H x W x 4 bytes, from the file
            headers) and cache in RAM (``CacheDataset``) all of them when that fits ``cache_budget_gb``, else
            the share that fits (the rest is loaded per access); ``"memory"``: ``CacheDataset`` with
            ``cache_rate`` (default 1); ``"disk"``: ``PersistentDataset`` in ``cache_dir`` (float32 on disk,
            decoded once); ``"none"``: plain ``Dataset`` (every access decodes the file).
        cache_rate: fraction cached with ``"memory"`` (``"auto"`` computes it).
        cache_budget_gb: RAM budget of ``"auto"``.
        cache_dir: folder of ``"disk"``.
        min_size: smallest image side accepted (the HR patch, ``lr_patch * scale``); smaller images are
            refused up front with their file names.
        num_workers: threads building the cache.

    The choice and the estimate are logged.
    """
    from monai.data import CacheDataset, Dataset, PersistentDataset

    if cache not in CACHE_MODES:
        raise ValueError(f"cache={cache!r}; use one of {CACHE_MODES}.")
    data = list(data)
    if not data:
        raise DataError(
            "training: the train split holds no images; give more images or change split.fractions."
        )
    shapes = check_sr_images(data, int(min_size)) if min_size else [image_shape(it["image"]) for it in data]
    need_gb = sum(h * w * 4 for h, w in shapes) / 1e9
    if cache == "auto":
        rate = 1.0 if need_gb <= cache_budget_gb else max(cache_budget_gb, 0.0) / need_gb
        mode = "memory" if int(len(data) * rate) >= 1 else "none"
    else:
        mode, rate = cache, 1.0 if cache_rate is None else float(cache_rate)
    if mode == "memory":
        logger.info(
            "training data: %d images, %.2f GB as float32; cache=%s: CacheDataset holds %.0f%% of them in RAM "
            "(budget %.1f GB), random patches are cut after the cache",
            len(data),
            need_gb,
            cache,
            100 * rate,
            cache_budget_gb,
        )
        return CacheDataset(data, transform, cache_rate=rate, num_workers=num_workers or None, progress=False)
    if mode == "disk":
        folder = Path(cache_dir or "sr_cache")
        logger.info("training data: %d images, %.2f GB as float32; cache=disk: PersistentDataset in %s",
                    len(data), need_gb, folder)  # fmt: skip
        return PersistentDataset(data, transform, cache_dir=folder)
    logger.info(
        "training data: %d images, %.2f GB as float32; cache=%s: no cache (budget %.1f GB), every access loads "
        "the file",
        len(data),
        need_gb,
        cache,
        cache_budget_gb,
    )
    return Dataset(data, transform)
