"""Super-resolution training and evaluation on MONAI engines: data, ``prepare_batch``, trainer/evaluator.

PSNR-oriented training is plain MONAI :class:`~monai.engines.SupervisedTrainer` fed random (LR, HR) patch
pairs through :class:`SRPrepareBatch`; evaluation is :class:`~monai.engines.SupervisedEvaluator` on whole
images with the shaved, ``data_range=1`` PSNR/SSIM of :mod:`medgen.metrics.image`. GAN training lives in
:mod:`medgen.engines.sr_gan`, distillation in :mod:`medgen.engines.sr_distill`.

Pairs are made by :class:`medgen.transforms.degradation.PairedDegradationd` (blur, anti-aliased downsampling,
noise); training crops the HR patch first and degrades the patch, so every pair is exactly aligned.

Data come from :func:`medgen.data.datalist.load_datalist` (the phantom's arrays or a real folder's file paths);
every transform here starts with :class:`medgen.transforms.io.LoadRadiographd`, so real images are used at their
own size: random HR patches for training (:func:`medgen.data.cache.sr_train_dataset` caches the loaded images when they fit a RAM
budget), whole images cropped to a multiple of ``scale`` for validation and evaluation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.engines.utils import PrepareBatch
from monai.transforms import Compose, EnsureTyped, OneOf, RandFlipd, RandSpatialCropd, SelectItemsd
from torch import nn

from medgen.metrics.image import sr_metric_handlers

logger = logging.getLogger("medgen.sr")

LR_KEY, HR_KEY = "lr", "hr"

# Named LR degradations, shared by training (``degradations`` of :func:`sr_patch_transform` and
# :func:`sr_validation_items`) and the evaluation (:data:`medgen.engines.sr_evaluate.VARIANTS`): anti-aliased
# bicubic x``scale`` downsampling, optionally after a Gaussian blur (sigma in HR pixels) and with
# Poisson-Gaussian noise on the LR.
DEGRADATIONS: dict[str, dict[str, float | None]] = {
    "bicubic": {"blur_sigma": None, "poisson_peak": None, "gaussian_std": None},
    "blur_noise": {"blur_sigma": 1.0, "poisson_peak": 2000.0, "gaussian_std": 0.005},
}
_DEGRADATION_KEYS = ("blur_sigma", "poisson_peak", "gaussian_std")


class SRPrepareBatch(PrepareBatch):
    """``prepare_batch`` for SR engines: returns ``(lr, hr)`` from a batch dict, moved to the device."""

    def __init__(self, lr_key: str = LR_KEY, hr_key: str = HR_KEY) -> None:
        self.lr_key, self.hr_key = lr_key, hr_key

    def __call__(
        self,
        batchdata: dict[str, torch.Tensor],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        missing = [k for k in (self.lr_key, self.hr_key) if k not in batchdata]
        if missing:
            raise KeyError(
                f"SRPrepareBatch: batch has no {missing} (keys: {sorted(batchdata)}); make pairs with "
                f"PairedDegradationd(keys='image', lr_key={self.lr_key!r}, hr_key={self.hr_key!r})."
            )
        lr, hr = batchdata[self.lr_key], batchdata[self.hr_key]
        lr = torch.as_tensor(lr).to(device=device, non_blocking=non_blocking, **kwargs)
        hr = torch.as_tensor(hr).to(device=device, non_blocking=non_blocking, **kwargs)
        return lr, hr


def _degradation(scale: int, seed: int | None = None, **kwargs: Any):
    """The one ``PairedDegradationd`` (image -> lr/hr) every SR transform chain uses; ``kwargs`` go to it."""
    from medgen.transforms.degradation import PairedDegradationd

    t = PairedDegradationd(keys="image", lr_key=LR_KEY, hr_key=HR_KEY, scale=scale, **kwargs)
    if seed is not None:
        t.set_random_state(seed)
    return t


def resolve_degradations(
    degradations: Sequence[str | Mapping[str, Any]] | str | Mapping[str, Any],
) -> list[tuple[str, dict[str, Any]]]:
    """``(name, PairedDegradation kwargs)`` for each entry: a name of :data:`DEGRADATIONS` or a dict of
    ``blur_sigma`` / ``poisson_peak`` / ``gaussian_std`` (each a value, a ``[low, high]`` range or None)."""
    if isinstance(degradations, (str, Mapping)):
        degradations = [degradations]
    out = []
    for i, d in enumerate(degradations):
        if isinstance(d, str):
            if d not in DEGRADATIONS:
                raise ValueError(
                    f"degradations: unknown degradation {d!r}; use one of {sorted(DEGRADATIONS)} or a dict "
                    f"with keys {list(_DEGRADATION_KEYS)}, e.g. degradations: [bicubic, blur_noise]."
                )
            out.append((d, dict(DEGRADATIONS[d])))
        elif isinstance(d, Mapping):
            bad = sorted(set(d) - set(_DEGRADATION_KEYS))
            if bad:
                raise ValueError(
                    f"degradations[{i}]: unknown keys {bad}; a custom degradation takes only "
                    f"{list(_DEGRADATION_KEYS)} (value, [low, high] range or null)."
                )
            kw = {k: d.get(k) for k in _DEGRADATION_KEYS}
            known = [n for n, v in DEGRADATIONS.items() if v == kw]
            out.append((known[0] if known else f"custom{i}", kw))
        else:
            raise TypeError(
                f"degradations[{i}] is a {type(d).__name__}; give a name ({sorted(DEGRADATIONS)}) or a dict."
            )
    if not out:
        raise ValueError("degradations is empty; give at least one, e.g. degradations: [bicubic].")
    return out


def _drop_meta() -> EnsureTyped:
    """The loaded image as a plain float32 tensor: SR pairs need no affine or metadata (collation is cheaper)."""
    return EnsureTyped("image", track_meta=False, dtype=torch.float32)


def sr_patch_transform(
    scale: int = 4,
    lr_patch: int = 48,
    blur_sigma: float | Sequence[float] | None = None,
    poisson_peak: float | Sequence[float] | None = None,
    gaussian_std: float | Sequence[float] | None = None,
    flip: bool = True,
    degradations: Sequence[str | Mapping[str, Any]] | None = None,
    weights: Sequence[float] | None = None,
    loader_kwargs: Mapping[str, Any] | None = None,
) -> Compose:
    """Training transform: load, random HR patch of ``lr_patch * scale`` pixels, optional flips, degradation.

    The chain starts with :class:`medgen.transforms.io.LoadRadiographd` (real items hold file paths; the
    phantom's in-memory arrays pass through unchanged, ``loader_kwargs`` are its options), so the patch is cut
    from the image at its own size. The loader is the only deterministic step before the first random one:
    :func:`medgen.data.cache.sr_train_dataset` caches its output (MONAI ``CacheDataset``) and crops after the cache boundary.

    With ``degradations`` (names of :data:`DEGRADATIONS` or dicts, see :func:`resolve_degradations`) each
    patch is degraded by one of them, drawn by MONAI :class:`~monai.transforms.OneOf` (uniformly, or by
    ``weights``); the draw comes from the transform's random state, so ``set_random_state`` (and
    :class:`medgen.handlers.checkpoint.EpochSeed`) make it reproducible. Without it, one degradation built
    from ``blur_sigma`` / ``poisson_peak`` / ``gaussian_std``.
    """
    from medgen.transforms.io import LoadRadiographd

    steps: list[Callable] = [
        LoadRadiographd("image", **dict(loader_kwargs or {})),  # file path -> (1, H, W); arrays pass through
        _drop_meta(),
        RandSpatialCropd("image", roi_size=(lr_patch * scale,) * 2, random_size=False),
    ]
    if flip:
        steps.append(RandFlipd("image", prob=0.5, spatial_axis=1))  # left-right only: radiographs are upright
    if degradations is not None:
        if any(v is not None for v in (blur_sigma, poisson_peak, gaussian_std)):
            raise ValueError(
                "sr_patch_transform: give either degradations=[...] or blur_sigma/poisson_peak/gaussian_std, "
                "not both (put the custom values in a degradations entry)."
            )
        chosen = resolve_degradations(degradations)
        if weights is not None and len(weights) != len(chosen):
            raise ValueError(
                f"sr_patch_transform: weights has {len(weights)} entries for {len(chosen)} degradations; "
                "give one weight per degradation or none (uniform)."
            )
        blocks = [_degradation(scale, **kw) for _, kw in chosen]
        steps.append(blocks[0] if len(blocks) == 1 else OneOf(blocks, weights=weights))
    else:
        steps.append(
            _degradation(scale, blur_sigma=blur_sigma, poisson_peak=poisson_peak, gaussian_std=gaussian_std)
        )
    steps += [
        SelectItemsd([LR_KEY, HR_KEY, "patient_id"]),
        EnsureTyped([LR_KEY, HR_KEY], track_meta=False, dtype=torch.float32),
    ]
    return Compose(steps)


def sr_whole_image_transform(
    scale: int = 4,
    blur_sigma: float | None = None,
    poisson_peak: float | None = None,
    gaussian_std: float | None = None,
    seed: int = 0,
    crop: int | None = None,
    loader_kwargs: Mapping[str, Any] | None = None,
) -> Compose:
    """Evaluation transform: the whole HR image (loaded at its own size) and its degraded LR.

    The image is loaded by :class:`~medgen.transforms.io.LoadRadiographd` (arrays pass through), centre-cropped
    to ``crop`` x ``crop`` HR pixels when ``crop`` is given (``eval_crop``: bounds the cost of very large
    images; a smaller side is kept whole), and cropped bottom/right to a multiple of ``scale`` (at most
    ``scale - 1`` rows/columns; the HR returned is the cropped one, so the pair stays aligned). The noise is
    drawn from a fixed ``seed``: the ``Compose`` itself is seeded (it reseeds its children; otherwise it would
    draw a seed from MONAI's global one), so the noise depends on ``seed`` only.
    """
    from monai.transforms import CenterSpatialCropd

    from medgen.transforms.io import LoadRadiographd

    steps: list[Callable] = [LoadRadiographd("image", **dict(loader_kwargs or {})), _drop_meta()]
    if crop:
        steps.append(CenterSpatialCropd("image", roi_size=(int(crop), int(crop))))
    degrade = _degradation(
        scale,
        seed,
        blur_sigma=blur_sigma,
        poisson_peak=poisson_peak,
        gaussian_std=gaussian_std,
        crop_to_multiple=True,
    )
    steps += [
        degrade,
        SelectItemsd([LR_KEY, HR_KEY, "patient_id"]),
        EnsureTyped([LR_KEY, HR_KEY], track_meta=False, dtype=torch.float32),
    ]
    return Compose(steps).set_random_state(seed=seed)


def sr_validation_items(
    items: Sequence[Mapping[str, Any]],
    scale: int = 4,
    degradations: Sequence[str | Mapping[str, Any]] = ("bicubic",),
    seed: int = 0,
    crop: int | None = None,
    loader_kwargs: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Whole-image validation pairs for every item under every degradation, made once (fixed noise).

    Returns ``len(items) * len(degradations)`` dicts with ``lr``, ``hr``, ``patient_id`` and ``degradation``
    (its name), so validating a model trained on several degradations scores all of them, and every
    validation round sees the same LR images. Ranges in a custom degradation are drawn once per image.
    Real items (file paths) are loaded once, at their own size; ``crop`` as in
    :func:`sr_whole_image_transform`.
    """
    from medgen.transforms.io import LoadRadiographd

    load = LoadRadiographd("image", **dict(loader_kwargs or {}))
    loaded = [load(dict(it)) for it in items]
    out = []
    for name, kw in resolve_degradations(degradations):
        transform = sr_whole_image_transform(scale, **kw, seed=seed, crop=crop)
        for it in loaded:
            pair = transform(dict(it))
            out.append(
                {
                    LR_KEY: pair[LR_KEY],
                    HR_KEY: pair[HR_KEY],
                    "patient_id": it["patient_id"],
                    "degradation": name,
                }
            )
    return out


class InterpolationSR(nn.Module):
    """An interpolation baseline (``bicubic``, ``lanczos``...) behind the SR network interface.

    Uses :func:`medgen.transforms.degradation.upsample`, the same code as every other baseline in medgen,
    so evaluators, benchmarks and figures treat it like a trained model.
    """

    def __init__(self, scale: int = 4, method: str = "bicubic") -> None:
        super().__init__()
        self.scale, self.method, self.arch = int(scale), method, method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from medgen.transforms.degradation import upsample

        return upsample(x, self.scale, self.method)


def create_sr_trainer(
    network: nn.Module,
    train_data_loader: Any,
    max_epochs: int = 1,
    lr: float = 2e-4,
    loss_function: nn.Module | None = None,
    device: str | torch.device = "cpu",
    epoch_length: int | None = None,
    train_handlers: Sequence[Any] | None = None,
    **kwargs: Any,
) -> SupervisedTrainer:
    """PSNR-oriented training: MONAI ``SupervisedTrainer`` with Adam and an L1 pixel loss by default."""
    from medgen.losses.sr import PixelLoss

    network = network.to(device)
    return SupervisedTrainer(
        device=torch.device(device),
        max_epochs=max_epochs,
        epoch_length=epoch_length,
        train_data_loader=train_data_loader,
        network=network,
        optimizer=torch.optim.Adam(network.parameters(), lr=lr),
        loss_function=loss_function or PixelLoss("l1"),
        prepare_batch=SRPrepareBatch(),
        train_handlers=list(train_handlers or []),
        **kwargs,
    )


def create_sr_evaluator(
    network: nn.Module,
    val_data_loader: Any,
    device: str | torch.device = "cpu",
    shave: int = 4,
    val_handlers: Sequence[Any] | None = None,
    **kwargs: Any,
) -> SupervisedEvaluator:
    """Whole-image evaluation with per-image PSNR (key metric) and SSIM, shaved, ``data_range=1``.

    After ``run()``, ``evaluator.state.metrics`` holds the means and ``evaluator.state.metric_details`` the
    per-image values (for standard deviations).
    """
    handlers = sr_metric_handlers(shave)
    return SupervisedEvaluator(
        device=torch.device(device),
        val_data_loader=val_data_loader,
        network=network.to(device),
        prepare_batch=SRPrepareBatch(),
        key_val_metric={"psnr": handlers["psnr"]},
        additional_metrics={"ssim": handlers["ssim"]},
        val_handlers=list(val_handlers or []),
        **kwargs,
    )


def per_image_metrics(evaluator: SupervisedEvaluator) -> dict[str, list[float]]:
    """Per-image PSNR/SSIM values collected by an evaluator from :func:`create_sr_evaluator`."""
    details = evaluator.state.metric_details
    return {k: [float(v) for v in torch.as_tensor(details[k]).reshape(-1)] for k in ("psnr", "ssim")}
