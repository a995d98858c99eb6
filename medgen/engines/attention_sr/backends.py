"""Region-SR backends of the pipeline: built from the config, trained (cached) on the true HR, and scored.

``network`` backends train with the SR zoo's trainer (:func:`medgen.engines.sr.create_sr_trainer`) on random
(LR, HR) patch pairs (:class:`medgen.engines.ldm_sr.RandomPatchPairs`); ``latent_diffusion`` backends with
:func:`medgen.engines.ldm_sr.train_ldm_sr` on patches of the same dataset. Checkpoints are written by
:func:`medgen.networks.utils.save_checkpoint` and read back by the backends.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medgen.engines.attention_sr.config import cache_key

__all__ = ["build_backend", "fit_sr_network", "hr_patches", "region_sr_quality", "summarise"]

# bump when the checkpoint format of the trained backends changes, so stale cache files are not read
_CKPT_FORMAT = "medgen-checkpoint-1"


def summarise(vals: list[float | None]) -> dict[str, float]:
    """Mean, sample standard deviation and count of the non-None values."""
    a = np.asarray([v for v in vals if v is not None], dtype=np.float64)
    return {
        "mean": float(a.mean()) if a.size else float("nan"),
        "std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
        "n": int(a.size),
    }


def hr_patches(hr: torch.Tensor, patch: int, scale: int, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` random HR body patches (N, 1, patch, patch) of the HR images ``hr``: the ``hr`` items of
    :class:`~medgen.engines.ldm_sr.RandomPatchPairs` (flat background crops redrawn)."""
    from medgen.engines.ldm_sr import RandomPatchPairs
    from medgen.engines.sr import HR_KEY

    pairs = RandomPatchPairs(hr, patch, scale, n, seed)
    return torch.stack([pairs[i][HR_KEY] for i in range(n)])


def fit_sr_network(
    net: torch.nn.Module,
    hr: torch.Tensor,
    scale: int,
    iterations: int,
    lr: float,
    seed: int,
    patch: int,
    batch_size: int,
) -> torch.nn.Module:
    """L1 training of an SR network on ``iterations`` batches of random patch pairs cut from the HR images ``hr``
    (N, 1, H, W): :func:`~medgen.engines.sr.create_sr_trainer` (Adam) with a per-iteration cosine decay from
    ``lr`` to ``lr / 1000``. Returns ``net`` in eval mode."""
    from monai.handlers import LrScheduleHandler
    from monai.utils import set_determinism

    from medgen.engines.ldm_sr import RandomPatchPairs
    from medgen.engines.sr import create_sr_trainer
    from medgen.handlers.progress import attach_progress

    if iterations < 1:
        raise ValueError(f"run_pipeline: backend.train.iterations must be >= 1, got {iterations}")
    set_determinism(seed)
    data = RandomPatchPairs(hr, patch, scale, iterations * batch_size, seed)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)
    trainer = create_sr_trainer(net.train(), loader, max_epochs=1, lr=lr, device="cpu", decollate=False)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(
        trainer.optimizer, T_max=iterations, eta_min=lr * 1e-3
    )
    LrScheduleHandler(cosine, print_lr=False, epoch_level=False).attach(trainer)
    attach_progress(trainer, "region SR network").run()
    return net.eval()


def build_backend(
    spec: Mapping[str, Any],
    data_cfg: Mapping[str, Any],
    data_id: Any,
    cache: Path,
    train_idx: list[int],
    data: dict[str, Any] | None = None,
) -> Any:
    """The ``sr_backend`` of ``spec`` (``{name, kwargs, train}``); with ``train`` a ``network`` or
    ``latent_diffusion`` backend is trained on the true HR of ``train`` ``n_images`` training images (phantom
    renders, or the native training images at least ``size * scale``) and cached under ``cache`` (file named by
    ``data_id``, the data's cache identity, and the training settings)."""
    from medgen.engines.attention_sr.data import render_hr
    from medgen.inferers.region_sr import FAST_SR_NETWORK, create_sr_backend

    name, kwargs, train = spec["name"], dict(spec.get("kwargs") or {}), dict(spec.get("train") or {})
    if name == "network" and "network" not in kwargs:
        kwargs = copy.deepcopy(FAST_SR_NETWORK) | kwargs
    if not train:
        return create_sr_backend(name, **kwargs)
    if name not in ("latent_diffusion", "network"):
        raise ValueError(
            f"backend.train is only supported for 'latent_diffusion' and 'network', not {name!r}"
        )
    scale = int(data_cfg["scale"])
    if data is not None and data["source"] != "phantom":
        train_idx = [i for i in train_idx if data["hr_ok"][i]]
        if not train_idx:
            raise ValueError(
                f"run_pipeline: backend.train needs high-resolution training images, but no training image of "
                f"{data['source']} is at least {data_cfg['size'] * scale} px (data.size x data.scale) natively; "
                "use a backend without training (bicubic, or a network checkpoint) or native-resolution images"
            )
    if "n_images" not in train:
        raise ValueError(f"run_pipeline: backend.train of {name!r} needs n_images (HR training images)")
    idx = train_idx[: min(int(train.pop("n_images")), len(train_idx))]

    def hr() -> torch.Tensor:
        size, noise = data_cfg["size"] * scale, float(data_cfg["hr_noise_scale"])
        return render_hr(idx, size, data_cfg["phantom_seed"], noise, data)

    if name == "latent_diffusion":
        ckpt = cache / f"{name}_{cache_key(data_id, spec.get('train'), _CKPT_FORMAT)}.pt"
        return _latent_diffusion_backend(ckpt, hr, scale, kwargs, **train)
    if "epochs" in train or "patches_per_image" in train:
        raise ValueError(
            "run_pipeline: backend.train for 'network' samples random patches: use `iterations` (batches, "
            "default 1200) instead of `epochs`/`patches_per_image`"
        )
    ckpt = cache / f"{name}_{cache_key(data_id, spec.get('train'), kwargs, _CKPT_FORMAT)}.pt"
    return _network_backend(ckpt, hr, scale, kwargs, **train)


def _network_backend(
    ckpt: Path,
    hr: Any,
    scale: int,
    kwargs: dict,
    iterations: int = 1200,
    patch: int = 96,
    batch_size: int = 16,
    lr: float = 1e-3,
) -> Any:
    import medgen
    from medgen.inferers.region_sr import NetworkBackend
    from medgen.networks.utils import save_checkpoint

    net = medgen.create_network(kwargs["network"], scale=scale, **kwargs.get("network_kwargs", {}))
    if not ckpt.is_file():
        fit_sr_network(net, hr(), scale, int(iterations), float(lr), 0, int(patch), int(batch_size))
        save_checkpoint(ckpt, net)
    return NetworkBackend(net, checkpoint=ckpt, scale=scale)


def _latent_diffusion_backend(
    ckpt: Path,
    hr: Any,
    scale: int,
    kwargs: dict,
    patches_per_image: int = 32,
    patch: int = 64,
    ae_epochs: int = 25,
    unet_epochs: int = 60,
    batch_size: int = 32,
    lr: float = 1e-3,
    ae_lr: float = 1e-3,
    ae_patch: int | None = 32,
    model: dict | None = None,
) -> Any:
    from medgen.engines.ldm_sr import train_ldm_sr
    from medgen.inferers.region_sr import LatentDiffusionBackend
    from medgen.networks.nets.ldm_sr import LDMSuperResolution

    if ckpt.is_file():
        return LatentDiffusionBackend(checkpoint=ckpt, model_kwargs=model, **kwargs)
    images = hr()
    trained = train_ldm_sr(
        hr_patches(images, int(patch), scale, len(images) * int(patches_per_image), seed=0),
        scale=scale,
        ae_epochs=int(ae_epochs),
        unet_epochs=int(unet_epochs),
        batch_size=int(batch_size),
        lr=float(lr),
        ae_lr=float(ae_lr),
        ae_patch=None if ae_patch is None else int(ae_patch),
        save_path=ckpt,
        model=LDMSuperResolution(scale=scale, **(model or {})),
    )
    return LatentDiffusionBackend(model=trained, **kwargs)


def region_sr_quality(
    backends: Mapping[str, Any],
    base_model: torch.nn.Module,
    hr: torch.Tensor,
    scale: int,
    attention: str,
    regions: Mapping[str, Any],
) -> dict[str, Any]:
    """Each backend (``{name: sr_backend}``) on the attention regions of ``degrade(hr)``, scored against ``hr``:
    region-only and whole-image PSNR/SSIM (mean +- std over images) and the regions' share of the image area."""
    from medgen.engines.ldm_sr import degrade
    from medgen.inferers.attention_sr import AttentionSRPipeline
    from medgen.metrics.classification import region_image_quality

    lr = degrade(hr, scale)
    box_kwargs = {k: v for k, v in regions.items() if k != "feather"}
    res = {}
    for name, be in backends.items():
        pipe = AttentionSRPipeline(
            base_model, be, scale=scale, attention=attention, feather=regions["feather"], **box_kwargs
        )
        out = pipe(lr, return_scaled=True)
        boxes = [b * scale for b in out.boxes]
        q = region_image_quality(out.scaled_images, hr, boxes, shave=scale)
        areas = [((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).sum().item() / hr.shape[-1] ** 2 for b in boxes]
        res[name] = {k: summarise(v) for k, v in q.items()} | {"region_area_share": float(np.mean(areas))}
    return res
