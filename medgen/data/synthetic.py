"""Tiny synthetic blob images for the bundle harness's minimal bundle (MONAI's ``create_test_image_2d``).

Real bundles use the chest-radiograph phantom (``medgen.data.phantom``); this exists so the harness is proven
on a bundle that needs nothing but MONAI.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def blob_items(n: int, size: int = 64, seed: int = 0) -> list[dict]:
    """``n`` in-memory items ``{"image": (1,H,W) float32, "label": (1,H,W) float32}``, deterministic in ``seed``."""
    from monai.data.synthetic import create_test_image_2d

    rs = np.random.RandomState(seed)
    items = []
    for _ in range(int(n)):
        img, seg = create_test_image_2d(
            size,
            size,
            num_objs=3,
            rad_min=3,
            rad_max=max(6, size // 5),
            noise_max=0.2,
            num_seg_classes=1,
            random_state=rs,
        )
        img = (img - img.min()) / max(float(img.max() - img.min()), 1e-6)
        items.append({"image": img[None].astype(np.float32), "label": (seg[None] > 0).astype(np.float32)})
    return items


def write_blob_images(out_dir: str | Path, n: int = 2, size: int = 64, seed: int = 1) -> list[dict]:
    """Write ``n`` blob images as 16-bit PNG into ``out_dir`` and return ``[{"image": path}]``."""
    from PIL import Image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    items = []
    for i, item in enumerate(blob_items(n, size, seed)):
        path = out / f"blob_{i:03d}.png"
        Image.fromarray(np.round(item["image"][0] * 65535).astype(np.uint16)).save(path)
        items.append({"image": str(path)})
    return items


def sr_pair_items(n: int, size: int = 64, scale: int = 2, seed: int = 0) -> list[dict]:
    """``n`` super-resolution pairs ``{"image": LR (1,h,w), "label": HR (1,H,W)}`` of blob images (area downsampling)."""
    from medgen.transforms.degradation import downsample

    return [
        {"image": np.asarray(downsample(it["image"], scale, "area"), dtype=np.float32), "label": it["image"]}
        for it in blob_items(n, size, seed)
    ]
