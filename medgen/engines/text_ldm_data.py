"""Image + report tensors for the text-to-X-ray LDM, from any data source that gives both.

Items come from :func:`medgen.data.datalist.load_datalist` with ``requires=("image", "report")``: the phantom
(image arrays and generated reports), the Indiana reader, or a labelled folder with ``report_column``. Every
image is brought to ``image_size`` x ``image_size`` in [0, 1] the same way: read by the one image reader
(:class:`medgen.transforms.io.LoadRadiograph`) when it is a path, centre-cropped to a square (the longer side is
cut; chest films are close to square) and resized with area averaging (MONAI ``Resized``'s ``area`` mode:
antialiased for downsizing). Per-finding labels are the data's own where it states them, else the findings parsed
from the report (:func:`medgen.data.report_findings.parse_findings`); ``label_source`` says which.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "encode_latents",
    "image_report_tensors",
    "square_resize",
    "text_encoder_spec",
    "trained_autoencoder",
]

logger = logging.getLogger(__name__)


def square_resize(image: torch.Tensor, size: int) -> torch.Tensor:
    """(1, H, W) in [0, 1] -> (1, size, size): centre crop to the shorter side, then area resize."""
    from monai.transforms import CenterSpatialCrop, Resize

    h, w = image.shape[-2:]
    side = min(h, w)
    x = CenterSpatialCrop((side, side))(image) if h != w else image
    if side != size:
        x = Resize((size, size), mode="area" if side > size else "bilinear")(x)
    return torch.as_tensor(x).float().clamp(0.0, 1.0)


def _labels_of(item: dict, labels: Sequence[str]) -> np.ndarray | None:
    """The item's stated labels over ``labels`` (NaN where unstated), or None when it states none."""
    if item.get("label") is None or item.get("labels") is None:
        return None
    names = list(item["labels"])
    value = np.asarray(item["label"], np.float32)
    mask = np.asarray(item.get("label_mask", np.ones(len(names))), np.float32)
    out = np.full(len(labels), np.nan, np.float32)
    for j, name in enumerate(labels):
        if name in names:
            k = names.index(name)
            out[j] = value[k] if mask[k] > 0 else np.nan
    return out


def image_report_tensors(
    items: Sequence[dict],
    image_size: int,
    workflow: str = "",
    labels: Sequence[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """``{"images": (N, 1, S, S) float32 in [0, 1], "reports": [str], "labels": (N, C) float32 (NaN: unstated),
    "label_names", "label_source", "refs"}`` for items with ``image`` and ``report``.

    Raises:
        ValueError: ``image_size`` is not a positive integer, or ``items`` is empty.
        medgen.data.errors.DataError: an item has an empty report (naming it).
    """
    from medgen.data.datalist import _item_ref
    from medgen.data.errors import DataError
    from medgen.data.labels import PHANTOM_LABELS
    from medgen.data.report_findings import parse_findings

    if not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size must be an integer >= 8, got {image_size!r}")
    items = list(items)
    if not items:
        raise ValueError(f"{workflow or 'text LDM'}: no items (the split is empty)")
    names = list(labels or PHANTOM_LABELS)
    empty = [_item_ref(it) for it in items if not str(it.get("report") or "").strip()]
    if empty:
        raise DataError(
            f"{workflow or 'text LDM'}: {len(empty)} item(s) have an empty report, e.g. {empty[:5]}; every "
            "training image needs its report text (fix the report column, or leave those images out)."
        )
    loader = None
    images, label_rows, sources = [], [], set()
    iterator = items
    if progress and len(items) > 200:
        from tqdm.auto import tqdm

        iterator = tqdm(items, desc=f"{workflow or 'text LDM'}: images at {image_size} px", unit="img")
    for it in iterator:
        image = it["image"]
        if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
            if loader is None:
                from medgen.transforms.io import LoadRadiograph

                loader = LoadRadiograph()
            image = loader(image)
        x = torch.as_tensor(np.asarray(image), dtype=torch.float32)
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3 or x.shape[0] != 1:
            raise ValueError(f"{_item_ref(it)}: expected a greyscale image (1, H, W), got {tuple(x.shape)}")
        images.append(square_resize(x, image_size))
        stated = _labels_of(it, names)
        if stated is None:
            stated = parse_findings(str(it["report"]), names)
            sources.add("parsed from the report")
        else:
            sources.add("stated by the data")
        label_rows.append(stated)
    return {
        "images": torch.stack(images),
        "reports": [str(it["report"]) for it in items],
        "labels": torch.from_numpy(np.stack(label_rows)),
        "label_names": names,
        "label_source": " and ".join(sorted(sources)),
        "refs": [_item_ref(it) for it in items],
    }


def trained_autoencoder(path: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The trained latent autoencoder (eval mode) of ``path``, or an error saying which workflow writes it."""
    from medgen.networks.utils import load_checkpoint

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: the diffusion stage needs the trained autoencoder; run "
            "`medgen run cxr_text_ldm train_autoencoder` first (same --bundle-root and --config overlays)."
        )
    model = load_checkpoint(path)
    if not hasattr(model, "encode_images"):
        raise ValueError(
            f"{path} holds a {type(model).__name__}, not a latent autoencoder (cxr_ldm_autoencoder)"
        )
    return model.to(device).eval()


@torch.no_grad()
def encode_latents(
    autoencoder: torch.nn.Module, images01: torch.Tensor, batch_size: int = 64
) -> torch.Tensor:
    """Scaled latents of images in [0, 1] (posterior means x ``scale_factor``), in batches, on the CPU."""
    device = next(autoencoder.parameters()).device
    out = [autoencoder.encode_images(b.to(device)).cpu() for b in images01.split(batch_size)]
    return torch.cat(out)


def text_encoder_spec(spec: dict[str, Any], reports: Sequence[str]) -> dict[str, Any]:
    """The UNet's ``text_encoder`` spec, with ``vocab: words`` of ``scratch_transformer`` resolved to the word
    list of the training ``reports`` (stored in the checkpoint's config, so sampling tokenises the same)."""
    from medgen.networks.text.scratch import build_vocab

    spec = {"name": spec["name"], "kwargs": dict(spec.get("kwargs") or {})}
    if spec["name"] == "scratch_transformer" and spec["kwargs"].get("vocab", "words") == "words":
        spec["kwargs"]["vocab"] = build_vocab(reports)
    return spec
