"""Training and prediction for the multi-label ViT classifier (MONAI ``SupervisedTrainer`` on in-memory tensors),
and the pieces of the bundle's train / evaluate workflows on any data source (``medgen.data.datalist``).

Labels a dataset does not state (``label_mask`` 0: blank or uncertain CSV cells, labels the dataset lacks after
projection onto another label list) are NaN targets: :class:`MaskedMultiLabelBCELoss` leaves them out of the loss
and :func:`masked_auroc_per_class` out of the AUROC.

Augmentation (MONAI dictionary transforms): small rotation, affine scale/translate, intensity scale/shift and
contrast. Horizontal flip is OFF by default: flipping a chest radiograph moves the heart to the right (dextrocardia),
which changes the meaning of Cardiomegaly/Enlarged Cardiomediastinum and of any laterality; turn it on with
``hflip_prob`` only for findings where side does not matter.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "ClassificationTargetd",
    "MaskedMultiLabelBCELoss",
    "checkpoint_labels",
    "classifier_data_transforms",
    "classifier_train_transforms",
    "masked_auroc_metric",
    "masked_auroc_per_class",
    "masked_mean_auroc",
    "predict_probabilities",
    "train_classifier",
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
    """Train ``model`` on (N, 1, H, W) images and (N, C) 0/1 labels (NaN: not stated, left out of the loss) with BCE
    (+ per-class ``pos_weight``).

    AdamW with a one-cycle (warm-up + cosine) schedule, stepped per iteration; ``warmup`` is the fraction of the
    iterations spent rising to ``lr``. ``grad_clip``: the gradients' global L2 norm is clipped to this value before
    every step (``None``: off), as ViT recipes do (timm's ``--clip-grad``); without it the from-scratch ViT of the
    attention-SR pipeline sometimes stalled in a poor solution (docs/attention_sr.md). Returns the model in eval mode.
    """
    from monai.data import DataLoader, Dataset
    from monai.engines import SupervisedTrainer
    from monai.handlers import LrScheduleHandler
    from monai.utils import set_determinism

    from medgen.losses.classification import pos_weight_from_labels

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
    # unstated labels (NaN) are left out of the loss; pos_weight counts them as negatives (an approximation)
    pw = pos_weight_from_labels(torch.nan_to_num(labels.float(), nan=0.0)).to(device) if pos_weight else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = max(1, epochs * len(loader))
    sched = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=warmup)
    trainer = SupervisedTrainer(
        device=device,
        max_epochs=epochs,
        train_data_loader=loader,
        network=model,
        optimizer=optimizer,
        loss_function=MaskedMultiLabelBCELoss(pos_weight=pw),
        train_handlers=[LrScheduleHandler(sched, print_lr=False, epoch_level=False)],
        decollate=False,
    )
    if grad_clip is not None:  # between backward and optimizer.step (MONAI fires BACKWARD_COMPLETED there)
        from medgen.handlers.gradient import GradientClipHandler

        GradientClipHandler(grad_clip).attach(trainer)
    if progress:  # Ignite's tqdm bar: epoch i/N, iterations and the running loss
        from medgen.handlers.progress import attach_progress

        attach_progress(trainer, "classifier")
    with without_meta_tracking():
        trainer.run()
    return model.eval()


@contextmanager
def without_meta_tracking():
    """MONAI transforms return plain tensors inside the block (``set_track_meta(False)``), restored after it.

    The in-memory training images carry no metadata worth keeping, and a ``MetaTensor`` costs on every op: the
    pipeline's augmentations (128 px, 352 images) take about 1.8x as long with it (``benchmarks/classifier_epoch.py``;
    a small share of an epoch, which the network's forward/backward dominates). The random draws and the pixels
    are the same either way (tested).
    """
    from monai.data import get_track_meta, set_track_meta

    old = get_track_meta()
    set_track_meta(False)
    try:
        yield
    finally:
        set_track_meta(old)


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


# -- the bundle's data path (train / evaluate on the phantom or a user's folder) ---------------------------------
class ClassificationTargetd:
    """Item -> ``{"image", "label"}`` with ``label`` over ``labels`` and NaN where the label is not stated.

    ``label`` is taken over the item's own ``labels`` names (readers and the phantom give them), projected with
    :func:`medgen.data.labels.project_labels` onto ``labels`` when those differ (labels the data lack become NaN);
    entries with ``label_mask`` 0 become NaN. Every other key is dropped, so collation never meets the readers'
    variable-length extras (boxes, report text, metadata).
    """

    def __init__(self, labels: Any = None, keys: tuple[str, ...] = ("image", "label")) -> None:
        self.labels = None if labels is None else list(labels)
        self.keys = tuple(keys)

    def __call__(self, data: dict) -> dict:
        label = np.asarray(data["label"], dtype=np.float32)
        mask = data.get("label_mask")
        if mask is not None and not np.all(np.asarray(mask) > 0):
            label = np.where(np.asarray(mask) > 0, label, np.float32(np.nan)).astype(np.float32)
        source = data.get("labels")
        if self.labels is not None and source is not None and list(source) != self.labels:
            from medgen.data.labels import project_labels

            label = project_labels(label, list(source), self.labels)
        elif self.labels is not None and label.shape[-1] != len(self.labels):
            raise ValueError(
                f"ClassificationTargetd: item has {label.shape[-1]} labels but the classifier has "
                f"{len(self.labels)} ({self.labels}) and the item gives no `labels` names to project from"
            )
        out = {k: data[k] for k in self.keys if k in data and k != "label"}
        out["label"] = label
        return out


def classifier_data_transforms(
    size: int, labels: Any = None, augment: bool = False, **augment_kwargs: Any
) -> Any:
    """The bundle's transform chain, one flat MONAI ``Compose``: ``LoadRadiographd`` -> the inference resize
    (:func:`medgen.inferers.attention_sr.classifier_preprocessd`: centred square pad, area resize to ``size``)
    -> :class:`ClassificationTargetd` -> with ``augment`` the :func:`classifier_train_transforms` augmentation.

    Flat on purpose: a nested ``Compose`` is itself randomisable and would shift the seeds that
    ``set_random_state`` hands the augmentations (the phantom's figures stay those of the augmentation alone).
    Phantom items (in-memory arrays at ``size``) pass the loader and the resize unchanged.
    """
    from monai.transforms import Compose

    from medgen.inferers.attention_sr import classifier_preprocessd

    chain = [*classifier_preprocessd(size).transforms, ClassificationTargetd(labels)]
    if augment:
        chain += list(classifier_train_transforms(size=size, **augment_kwargs).transforms)
    return Compose(chain)


class MaskedMultiLabelBCELoss(nn.Module):
    """:class:`~medgen.losses.classification.MultiLabelBCELoss` that leaves NaN targets (unstated labels) out.

    Without NaN targets it is exactly ``MultiLabelBCELoss`` (same call, same value). With them, the mean is over
    the stated (finite) entries only; a batch with none gives a zero loss that still has a gradient path.
    """

    def __init__(self, pos_weight: Any = None) -> None:
        super().__init__()
        from medgen.losses.classification import MultiLabelBCELoss

        self.bce = MultiLabelBCELoss(pos_weight=pos_weight)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # noqa: A002
        target = target.to(input.dtype)
        stated = torch.isfinite(target)
        if bool(stated.all()):
            return self.bce(input, target)
        if input.shape != target.shape:
            return self.bce(input, target)  # the shape error of MultiLabelBCELoss
        pw = self.bce.pos_weight
        per = nn.functional.binary_cross_entropy_with_logits(
            input, torch.where(stated, target, torch.zeros_like(target)), pos_weight=pw, reduction="none"
        )
        return (per * stated).sum() / stated.sum().clamp_min(1)


def masked_auroc_per_class(y_true: Any, y_score: Any) -> np.ndarray:
    """(C,) AUROC per class over the rows whose label is stated (finite); NaN for a class whose stated labels
    hold one value only (AUROC undefined: such classes are skipped by :func:`masked_mean_auroc`)."""
    from medgen.metrics.classification import auroc_per_class

    t = np.asarray(y_true.detach().cpu() if hasattr(y_true, "detach") else y_true, dtype=np.float64)
    s = np.asarray(y_score.detach().cpu() if hasattr(y_score, "detach") else y_score, dtype=np.float64)
    if t.ndim == 1:
        t, s = t[:, None], s[:, None]
    out = np.full(t.shape[1], np.nan)
    for c in range(t.shape[1]):
        rows = np.isfinite(t[:, c])
        if rows.any():
            out[c] = auroc_per_class(t[rows, c : c + 1], s[rows, c : c + 1])[0]
    return out


def masked_mean_auroc(y_score: Any, y_true: Any) -> float:
    """Mean AUROC over the classes where it is defined (stated labels of both values); NaN, logged, when none is
    (a tiny validation / test set). Argument order of Ignite's ``EpochMetric`` compute function."""
    auc = masked_auroc_per_class(y_true, y_score)
    if not np.isfinite(auc).any():
        logger.warning(
            "AUROC undefined for every class: no class has both a positive and a negative stated label among the "
            "%d evaluated images; the figure is NaN (use more images)",
            len(np.asarray(y_true)),
        )
        return float("nan")
    skipped = int((~np.isfinite(auc)).sum())
    if skipped:
        logger.info("mean AUROC over %d of %d classes (%d with one label value skipped)", len(auc) - skipped,
                    len(auc), skipped)  # fmt: skip
    return float(np.nanmean(auc))


def _stack_pred_label(output: Any) -> tuple[torch.Tensor, torch.Tensor]:
    from monai.handlers import from_engine

    pred, label = from_engine(["pred", "label"])(output)
    stack = lambda v: torch.stack([torch.as_tensor(x) for x in v]) if isinstance(v, list | tuple) else v  # noqa: E731
    return stack(pred).float(), stack(label).float()


def masked_auroc_metric() -> Any:
    """Ignite ``EpochMetric`` of :func:`masked_mean_auroc` on an evaluator's decollated ``pred`` / ``label``
    (the bundle's ``val_mean_auroc``; gathered across ranks under DDP)."""
    from ignite.metrics import EpochMetric

    return EpochMetric(masked_mean_auroc, output_transform=_stack_pred_label, check_compute_fn=False)


def checkpoint_labels(path: str, default: Any = None) -> list[str]:
    """The label list stored in a :func:`~medgen.networks.nets.vit_classifier.save_classifier_checkpoint` file,
    so inference builds the classifier for the labels it was trained on (the phantom's, or a dataset's);
    ``default`` (the phantom's labels when None) when the file does not exist yet."""
    from pathlib import Path

    if not Path(path).is_file():
        if default is None:
            from medgen.data.labels import PHANTOM_LABELS

            default = PHANTOM_LABELS
        return list(default)
    from medgen.networks.utils import read_checkpoint

    ckpt = read_checkpoint(path)
    if "labels" not in ckpt:
        raise ValueError(
            f"checkpoint {path!r} has no label list; write it with medgen.networks.utils.save_checkpoint(..., labels=...)"
        )
    return list(ckpt["labels"])
