"""The classifier arms of the experiment: the base training, the fine-tuning of a base on a given image set
(enhanced or native: the same function for both), the native high-resolution baseline, and their evaluation."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["evaluate_arm", "native_hires_images", "retrain", "train_base_classifier", "validation_loss"]


def train_base_classifier(
    classifier: Mapping[str, Any],
    images: torch.Tensor,
    labels: torch.Tensor,
    seed: int,
    names: Sequence[str],
    device: str = "cpu",
    kwargs: Mapping[str, Any] | None = None,
    epochs: int | None = None,
    progress: bool = True,
) -> torch.nn.Module:
    """The ``classifier`` section's network (``name``, ``kwargs`` or ``kwargs`` given here) built and trained from
    scratch for ``epochs`` (default the section's) with its ``batch_size``, ``lr``, ``warmup`` and ``grad_clip``.

    torch is seeded before the network is built, so the initial weights belong to the seed too.
    """
    import medgen
    from medgen.engines.classifier import train_classifier

    torch.manual_seed(seed)
    net = medgen.create_network(
        classifier["name"], labels=list(names), **(classifier["kwargs"] if kwargs is None else kwargs)
    )
    return train_classifier(
        net,
        images,
        labels,
        epochs=classifier["epochs"] if epochs is None else epochs,
        batch_size=classifier["batch_size"],
        lr=classifier["lr"],
        warmup=classifier["warmup"],
        grad_clip=classifier["grad_clip"],
        seed=seed,
        device=device,
        progress=progress,
    )


def retrain(
    base: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    classifier: Mapping[str, Any],
    seed: int,
    device: str = "cpu",
) -> torch.nn.Module:
    """A copy of ``base`` fine-tuned on ``images`` for the section's ``retrain_epochs`` at ``retrain_lr``: the
    enhanced and the native arm differ only in the images."""
    from medgen.engines.classifier import train_classifier

    net = copy.deepcopy(base)
    return train_classifier(
        net,
        images,
        labels,
        epochs=classifier["retrain_epochs"],
        batch_size=classifier["batch_size"],
        lr=classifier["retrain_lr"],
        seed=seed,
        device=device,
    )


@torch.no_grad()
def validation_loss(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float | None:
    """Mean binary cross-entropy (no class weights) of ``model`` on the validation patients' images."""
    from medgen.engines.classifier import predict_probabilities

    if len(images) == 0:
        return None
    p = predict_probabilities(model, images).clamp(1e-7, 1 - 1e-7)
    return float(torch.nn.functional.binary_cross_entropy(p, labels.float()))


def evaluate_arm(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    split: tuple[list[int], list[int], list[int]],
    names: Sequence[str],
    seed: int,
    n_boot: int,
    groups: Sequence[str],
) -> tuple[dict[str, Any], np.ndarray]:
    """:func:`~medgen.metrics.classification.classification_report` on the test images (patient ``groups`` for
    the bootstrap) with ``val_loss`` on the validation images added, and the test probabilities (N_test, C)."""
    from medgen.engines.classifier import predict_probabilities
    from medgen.metrics.classification import classification_report

    _, va, te = split
    val = validation_loss(model, images[va], labels[va])
    probs = predict_probabilities(model, images[te]).numpy()
    rep = classification_report(
        labels[te].numpy(), probs, list(names), seed=seed, n_boot=n_boot, groups=groups
    )
    rep["val_loss"] = val
    return rep, probs


def native_hires_images(
    factor: int, data_cfg: Mapping[str, Any], cache: Path, data: dict[str, Any]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels of the native high-resolution arm: phantom renders at ``factor`` x the working size, or
    on real data the native images at that size (refused when an image is smaller natively)."""
    from medgen.engines.attention_sr.data import load_native, render_phantom_set

    if int(factor) != factor or factor < 2:
        raise ValueError(f"run_pipeline: native_hires.factor must be an integer >= 2, got {factor}")
    side = int(data_cfg["size"]) * int(factor)
    if data["source"] == "phantom":
        hi = render_phantom_set(data_cfg["n_images"], side, data_cfg["phantom_seed"], cache)
        return torch.from_numpy(hi["images"]), torch.from_numpy(hi["labels"])
    small = int((data["native_side"] < side).sum())
    if small:
        raise ValueError(
            f"run_pipeline: native_hires trains on the native images at {side} px (data.size x "
            f"native_hires.factor), but {small} of {len(data['files'])} images are smaller natively; disable "
            "native_hires or use native-resolution images"
        )
    return torch.cat([load_native(p, side) for p in data["files"]]), torch.from_numpy(data["labels"])
