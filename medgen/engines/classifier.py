"""Training and prediction for the multi-label ViT classifier (MONAI ``SupervisedTrainer`` on in-memory tensors).

Augmentation (MONAI dictionary transforms): small rotation, affine scale/translate, intensity scale/shift and
contrast. Horizontal flip is OFF by default: flipping a chest radiograph moves the heart to the right (dextrocardia),
which changes the meaning of Cardiomegaly/Enlarged Cardiomediastinum and of any laterality; turn it on with
``hflip_prob`` only for findings where side does not matter.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "classifier_train_transforms",
    "phantom_classification_items",
    "predict_probabilities",
    "train_classifier",
    "write_phantom_pngs",
]

logger = logging.getLogger(__name__)


def classifier_train_transforms(
    rotate_deg: float = 8.0,
    scale: float = 0.08,
    translate_frac: float = 0.04,
    intensity: float = 0.1,
    hflip_prob: float = 0.0,
    size: int | None = None,
) -> Any:
    """MONAI ``Compose`` of random augmentations on key ``image`` ((1, H, W) float in [0, 1])."""
    from monai.transforms import (
        Compose,
        RandAdjustContrastd,
        RandAffined,
        RandFlipd,
        RandScaleIntensityd,
        RandShiftIntensityd,
    )

    shift = translate_frac * (size or 128)
    t = [
        RandAffined(
            keys="image",
            prob=0.8,
            rotate_range=np.deg2rad(rotate_deg),
            scale_range=(scale, scale),
            translate_range=(shift, shift),
            padding_mode="border",
        ),
        RandScaleIntensityd(keys="image", factors=intensity, prob=0.5),
        RandShiftIntensityd(keys="image", offsets=intensity / 2, prob=0.5),
        RandAdjustContrastd(keys="image", gamma=(0.8, 1.25), prob=0.3),
    ]
    if hflip_prob > 0:
        t.append(RandFlipd(keys="image", prob=hflip_prob, spatial_axis=1))
    return Compose(t)


def train_classifier(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    epochs: int = 10,
    batch_size: int = 32,
    lr: float = 1e-3,
    weight_decay: float = 0.05,
    warmup: float = 0.15,
    grad_clip: float | None = 1.0,
    pos_weight: bool = True,
    augment: bool = True,
    hflip_prob: float = 0.0,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> nn.Module:
    """Train ``model`` on (N, 1, H, W) images and (N, C) 0/1 labels with BCE (+ per-class ``pos_weight``).

    AdamW with a one-cycle (warm-up + cosine) schedule, stepped per iteration; ``warmup`` is the fraction of the
    iterations spent rising to ``lr``. ``grad_clip``: the gradients' global L2 norm is clipped to this value before
    every step (``None``: off), as ViT recipes do (timm's ``--clip-grad``); without it the from-scratch ViT of the
    attention-SR pipeline sometimes stalled in a poor solution (docs/attention_sr.md). Returns the model in eval mode.
    """
    from monai.data import DataLoader, Dataset
    from monai.engines import SupervisedTrainer
    from monai.handlers import LrScheduleHandler
    from monai.utils import set_determinism

    from medgen.losses.classification import MultiLabelBCELoss, pos_weight_from_labels

    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"train_classifier: images must be (N, 1, H, W), got {tuple(images.shape)}")
    if labels.ndim != 2 or labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"train_classifier: labels must be (N, C) for {images.shape[0]} images, got {tuple(labels.shape)}"
        )
    if grad_clip is not None and grad_clip <= 0:
        raise ValueError(f"train_classifier: grad_clip must be > 0 or None, got {grad_clip}")
    if not 0 < warmup < 1:
        raise ValueError(f"train_classifier: warmup must be a fraction in (0, 1), got {warmup}")
    set_determinism(seed)
    device = torch.device(device)
    model = model.to(device)
    items = [{"image": images[i].float(), "label": labels[i].float()} for i in range(images.shape[0])]
    transform = classifier_train_transforms(hflip_prob=hflip_prob, size=images.shape[-1]) if augment else None
    loader = DataLoader(
        Dataset(items, transform=transform), batch_size=batch_size, shuffle=True, num_workers=0
    )
    pw = pos_weight_from_labels(labels).to(device) if pos_weight else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = max(1, epochs * len(loader))
    sched = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=warmup)
    trainer = SupervisedTrainer(
        device=device,
        max_epochs=epochs,
        train_data_loader=loader,
        network=model,
        optimizer=optimizer,
        loss_function=MultiLabelBCELoss(pos_weight=pw),
        train_handlers=[LrScheduleHandler(sched, print_lr=False, epoch_level=False)],
        decollate=False,
    )
    if grad_clip is not None:  # between backward and optimizer.step (MONAI fires BACKWARD_COMPLETED there)
        from medgen.handlers.gradient import GradientClipHandler

        GradientClipHandler(grad_clip).attach(trainer)
    if progress:  # Ignite's tqdm bar: epoch i/N, iterations and the running loss
        from medgen.handlers.progress import attach_progress

        attach_progress(trainer, "classifier")
    trainer.run()
    return model.eval()


@torch.no_grad()
def predict_probabilities(model: nn.Module, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Sigmoid probabilities (N, C) in eval mode."""
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    out = torch.cat(
        [
            torch.sigmoid(model(images[i : i + batch_size].to(dev))).cpu()
            for i in range(0, len(images), batch_size)
        ]
    )
    model.train(was)
    return out


def phantom_classification_items(
    split: str = "train",
    n: int = 600,
    size: int = 128,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
) -> list[dict[str, Any]]:
    """Phantom items ``{"image": (1, H, W), "label": (C,), "patient_id"}`` of one patient-level split.

    ``split`` is ``train``, ``val`` or ``test`` of :func:`medgen.data.split.patient_split` over studies
    ``0..n-1`` of phantom set ``seed``: no patient is in two splits.
    """
    from medgen.data.phantom import patient_of, render_phantom
    from medgen.data.split import patient_split

    names = ("train", "val", "test")
    if split not in names:
        raise ValueError(f"phantom_classification_items: split must be one of {names}, got {split!r}")
    items = [{"index": i, "patient_id": patient_of(i, seed)[0]} for i in range(int(n))]
    chosen = patient_split(items, fractions, seed=seed)[names.index(split)]
    out = []
    for it in chosen:
        s = render_phantom(it["index"], size, seed)
        out.append(
            {
                "image": s.image[None].astype(np.float32),
                "label": s.labels.astype(np.float32),
                "patient_id": s.patient_id,
            }
        )
    return out


def write_phantom_pngs(
    out_dir: str, n: int = 2, size: int = 128, seed: int = 0, start: int = 100000
) -> list[dict[str, str]]:
    """Write ``n`` phantom radiographs as 16-bit PNG (inference inputs) and return ``[{"image": path}]``."""
    from pathlib import Path

    from PIL import Image

    from medgen.data.phantom import render_phantom

    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(int(n)):
        img = render_phantom(start + i, size, seed).image
        path = folder / f"phantom_{start + i:06d}.png"
        Image.fromarray(np.round(img * 65535).astype(np.uint16)).save(path)
        items.append({"image": str(path)})
    return items
