"""The data stage: the phantom (rendered once, cached) or a labelled folder of native-resolution radiographs.

Real data (``dataset.dir``): the native image, padded square and area-resized to ``size * scale``, is the HR
reference and the classifier's input is its :func:`~medgen.engines.ldm_sr.degrade` (area averaging by ``scale``,
the phantom's LR degradation); images whose native side is below ``size * scale`` are classified (area-resized)
but left out of every HR use. Localisation truth: the phantom's finding masks, a dataset's finding boxes drawn as
masks, or none.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medgen.engines.attention_sr.config import cache_key

__all__ = ["load_native", "load_pipeline_data", "phantom_split", "render_hr", "render_phantom_set"]

logger = logging.getLogger(__name__)


def render_phantom_set(n_images: int, size: int, phantom_seed: int, cache: Path) -> dict[str, np.ndarray]:
    """Phantom ``images`` (N, 1, size, size), ``labels``, ``masks`` and ``patient_ids``, cached as one .npz."""
    from medgen.data.labels import PHANTOM_LABELS
    from medgen.data.phantom import render_phantom

    path = cache / f"phantom_{cache_key(n_images, size, phantom_seed)}.npz"
    if path.is_file():
        z = np.load(path)
        return {k: z[k] for k in z.files}
    samples = [render_phantom(i, size, phantom_seed) for i in range(n_images)]
    out = {
        "images": np.stack([s.image for s in samples])[:, None].astype(np.float32),
        "labels": np.stack([s.labels for s in samples]).astype(np.float32),
        "masks": np.stack(
            [
                np.stack([s.masks.get(n, np.zeros_like(s.image, bool)) for n in PHANTOM_LABELS])
                for s in samples
            ]
        ),
        "patient_ids": np.array([s.patient_id for s in samples]),
    }
    np.savez_compressed(path, **out)
    return out


def render_hr(
    indices: Sequence[int],
    size: int,
    phantom_seed: int = 0,
    hr_noise_scale: float = 1.0,
    data: dict[str, Any] | None = None,
) -> torch.Tensor:
    """HR references (N, 1, size, size): phantom renders at quantum-noise factor ``hr_noise_scale`` (1 = the
    default dose, 0.25 = 16x dose), or on real data (``data`` of :func:`load_pipeline_data`) the native images."""
    from medgen.data.phantom import render_phantom

    if data is not None and data["source"] != "phantom":
        bad = [int(i) for i in indices if not data["hr_ok"][int(i)]]
        if bad:
            raise ValueError(
                f"run_pipeline: {len(bad)} image(s) are below the HR size {size} px (native side < size x scale)"
            )
        return torch.cat([load_native(data["files"][int(i)], size) for i in indices])
    if not 0 <= hr_noise_scale <= 1:
        raise ValueError(
            "run_pipeline: data.hr_noise_scale must be in [0, 1] (1 = default dose, 0.25 = 16x dose), "
            f"got {hr_noise_scale}"
        )
    images = [render_phantom(int(i), size, phantom_seed, noise_scale=hr_noise_scale).image for i in indices]
    return torch.from_numpy(np.stack(images))[:, None]


def phantom_split(
    patient_ids: Sequence[Any], fractions: Sequence[float], seed: int
) -> tuple[list[int], list[int], list[int]]:
    """Train / validation / test image indices of a patient-level split."""
    from medgen.data.split import patient_split

    items = [{"index": i, "patient_id": str(p)} for i, p in enumerate(patient_ids)]
    parts = patient_split(items, fractions, seed=seed)
    return tuple([it["index"] for it in part] for part in parts)  # type: ignore[return-value]


def load_native(path: str, size: int) -> torch.Tensor:
    """One radiograph file as (1, 1, size, size): the bundle's loader, centred square pad, area resize."""
    from medgen.inferers.attention_sr import pad_square
    from medgen.transforms.io import LoadRadiograph

    x = pad_square(LoadRadiograph()(path)).float()[None]
    return torch.nn.functional.interpolate(x, size=(size, size), mode="area")


def load_pipeline_data(cfg: dict, cache: Path, out_dir: Path) -> dict[str, Any]:
    """Images, labels and split of the phantom or of a labelled folder, and the localisation ground truth.

    Returns a dict with ``images`` (N, 1, size, size) float32, ``labels`` (N, C), ``label_names``,
    ``patient_ids``, ``split`` (train / val / test index lists), ``source`` (``phantom`` or the reader),
    ``truth`` (``masks``: phantom finding masks; ``boxes``: masks drawn from the dataset's finding boxes;
    ``none``), ``truth_masks(i)`` -> ``{finding: bool (size, size)}``, ``hr`` (what the HR reference is) and,
    on real data, ``files``, ``native_side`` and ``hr_ok`` (native side >= size * scale). ``cfg`` is the
    pipeline config (its ``dataset`` and ``data`` sections).
    """
    from medgen.data.labels import PHANTOM_LABELS

    ds, d = cfg["dataset"], cfg["data"]
    if ds["dir"]:
        return _load_real(cfg, cache, out_dir)
    if ds["name"] not in (None, "phantom"):
        raise ValueError(f"run_pipeline: dataset.name {ds['name']!r} needs dataset.dir (the folder to read)")
    data: dict[str, Any] = render_phantom_set(d["n_images"], d["size"], d["phantom_seed"], cache)
    data.update(
        split=phantom_split(data["patient_ids"], d["fractions"], d["phantom_seed"]),
        label_names=list(PHANTOM_LABELS),
        source="phantom",
        truth="masks",
        hr="true high-resolution phantom render",
        info={"dataset": "phantom", "dataset_dir": None},
    )
    data["truth_masks"] = lambda i: {n: data["masks"][i, j] for j, n in enumerate(PHANTOM_LABELS)}
    return data


def _stated_labels(items: list[dict]) -> tuple[list[str], np.ndarray]:
    names = list(items[0]["labels"])
    if any(list(it["labels"]) != names for it in items):
        raise ValueError("run_pipeline: the reader gave items with different label lists")
    labels = np.stack(
        [np.where(np.asarray(it.get("label_mask", 1)) > 0, it["label"], np.nan) for it in items]
    ).astype(np.float32)
    if np.isnan(labels).any():
        rows = int(np.isnan(labels).any(1).sum())
        raise ValueError(
            f"run_pipeline: {rows} of {len(items)} images have unstated (blank or uncertain) labels; the pipeline's "
            "per-class AUROC / accuracy / F1 report needs every label stated. Fill the blanks with 0/1, or list "
            "only the stated findings in dataset.kwargs.labels / label_columns (the train and evaluate workflows "
            "mask unstated labels)"
        )
    return names, labels


def _load_images(files: list[str], size: int, scale: int, cache: Path) -> tuple[np.ndarray, ...]:
    """Working-resolution images (the degraded native HR where the file is large enough), native sides and
    (H, W) of every file, cached as one .npz."""
    from medgen.engines.ldm_sr import degrade
    from medgen.transforms.io import LoadRadiograph

    path = cache / f"real_{cache_key(files, size, scale)}.npz"
    if path.is_file():
        z = np.load(path)
        return z["images"], z["native_side"], z["native_hw"]
    hr_side, loader, imgs, sides, hws = size * scale, LoadRadiograph(), [], [], []
    for f in files:
        hw_f = tuple(int(v) for v in loader(f).shape[-2:])
        side = max(hw_f)
        # LR = the phantom's degradation of the native HR
        img = degrade(load_native(f, hr_side), scale) if side >= hr_side else load_native(f, size)
        imgs.append(img[0].numpy().astype(np.float32))
        sides.append(side)
        hws.append(hw_f)
    images, native_side, hw = np.stack(imgs), np.asarray(sides), np.asarray(hws)
    np.savez_compressed(path, images=images, native_side=native_side, native_hw=hw)
    return images, native_side, hw


def _load_real(cfg: dict, cache: Path, out_dir: Path) -> dict[str, Any]:
    from medgen.data.datalist import load_datalist
    from medgen.metrics.localization import boxes_to_masks

    d, ds = cfg["data"], cfg["dataset"]
    size, scale = int(d["size"]), int(d["scale"])
    split = {"fractions": d["fractions"], "seed": 0, **dict(ds.get("split") or {})}
    splits = load_datalist(
        ds["name"],
        ds["dir"],
        ds.get("kwargs") or {},
        split,
        requires=("image", "label"),
        workflow="pipeline",
        report_dir=out_dir,
        on_error=ds.get("on_error", "raise"),
    )
    parts = [list(p) for p in splits]
    items = [it for p in parts for it in p]
    bounds = np.cumsum([0] + [len(p) for p in parts])
    split_idx = tuple(list(range(bounds[k], bounds[k + 1])) for k in range(3))
    names, labels = _stated_labels(items)
    if not all(isinstance(it["image"], str | Path) for it in items):
        raise ValueError("run_pipeline: real-data items must give image file paths")
    files = [str(it["image"]) for it in items]
    hr_side = size * scale
    images, native_side, hw = _load_images(files, size, scale, cache)
    has_boxes = any("boxes" in it for it in items)
    box_masks: dict[int, dict[str, np.ndarray]] = {}
    for i, it in enumerate(items if has_boxes else []):
        if it.get("boxes"):
            scale_b = 1.0 if not ds.get("boxes_size") else float(max(hw[i])) / float(ds["boxes_size"])
            box_masks[i] = boxes_to_masks(it["boxes"], tuple(hw[i]), size, box_scale=scale_b)
    truth = "boxes" if has_boxes else "none"
    n_hr = int((native_side >= hr_side).sum())
    logger.info("pipeline data: %s, %d images (%d at >= %d px native: HR reference), localisation truth: %s",
                splits.info["dataset"], len(files), n_hr, hr_side, truth)  # fmt: skip
    return {
        "images": images,
        "labels": labels,
        "patient_ids": np.array([str(it["patient_id"]) for it in items]),
        "split": split_idx,
        "label_names": names,
        "source": splits.info["dataset"],
        "truth": truth,
        "truth_masks": lambda i: box_masks.get(i, {}),
        "hr": f"native image at {hr_side} px ({n_hr} of {len(files)} images are that large natively)",
        "files": files,
        "native_side": native_side,
        "hr_ok": native_side >= hr_side,
        "info": {
            "dataset": splits.info["dataset"],
            "dataset_dir": splits.info["dataset_dir"],
            "split_method": splits.info["split_method"],
            "data_report": splits.info.get("report"),
        },
    }
