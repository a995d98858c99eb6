"""The attention-guided SR classification experiment, end to end, as one library call.

``run_pipeline(config)``: the data stage (:func:`load_pipeline_data`: the phantom, or a labelled folder of
native-resolution radiographs through ``medgen.data.datalist``) -> patient-level split -> (train or load) the region SR backend ->
per seed: train the base classifier -> attention maps -> enhance every image's top-k attention regions (cached
on disk) -> fine-tune on the enhanced images; and, as the control the paper lacks, fine-tune the same base for
the same number of epochs on the native (un-enhanced) images -> evaluate all on the same held-out patients ->
report (``report.md``, ``report.json``, figures) with mean +- std over seeds.

Reported beside each other: per-class AUROC with bootstrap CIs (patient-level), element-wise and exact-match
accuracy next to the all-negative baseline, macro F1, attention localisation (pointing game, mass share) next to a
uniform map, and SR quality of the regions against the true high-resolution phantom (region-only and
whole-image PSNR/SSIM, backend vs bicubic).

Real data (``dataset.dir``): the native image, padded square and area-resized to ``size * scale``, is the HR
reference and the classifier's input is its :func:`~medgen.engines.ldm_sr.degrade` (area averaging by ``scale``,
the phantom's LR degradation), so region PSNR/SSIM against the native image is defined as on the phantom; images
whose native side is below ``size * scale`` are classified (area-resized) but left out of every HR use.
Localisation is scored against finding boxes where the dataset has them (NIH ``BBox_List_2017.csv``:
``dataset.kwargs.with_boxes``), converted to masks at the classifier's resolution; without masks or boxes the
report says that there is no localisation ground truth. Nothing falls back to the phantom.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["DEFAULT_CONFIG", "load_pipeline_data", "run_pipeline"]

logger = logging.getLogger(__name__)

DEFAULT_CONFIG: dict[str, Any] = {
    "output_dir": "runs/attention_sr",
    "cache_dir": None,  # default: <output_dir>/cache
    "device": "cpu",
    "seeds": [0, 1, 2],
    # dataset: dir null = the phantom (data.n_images studies); a folder = a labelled reader through
    # medgen.data.datalist.load_datalist (name: null/auto recognises the layout; kwargs: the reader's options;
    # split: {fractions, seed, official}, fractions default data.fractions). boxes_size: side of the image the
    # box coordinates refer to (NIH: 1024, also for downsampled copies); null = the file's own size
    "dataset": {
        "name": None,
        "dir": None,
        "kwargs": {},
        "split": {},
        "on_error": "raise",
        "boxes_size": None,
    },
    # hr_noise_scale: quantum-noise factor of the true-HR phantom render (SR training targets and the region-quality
    # reference): 0.25 = 16x dose, as in the cxr_sr_distillation bundle; per-pixel noise of a default-dose (1.0)
    # HR cannot be predicted from LR and only caps every backend's PSNR
    "data": {
        "n_images": 500,
        "size": 128,
        "scale": 4,
        "phantom_seed": 0,
        "fractions": [0.7, 0.1, 0.2],
        "hr_noise_scale": 0.25,
    },
    "classifier": {
        "name": "vit_phantom_small",
        "kwargs": {
            "img_size": 128,
            "patch_size": 16,
            "embed_dim": 128,
            "depth": 4,
            "num_heads": 2,
            "conv_stem": True,
            "stem_width": 32,  # two 3x3 convs per stem stage, 32-64-128 channels: mean AUROC 0.74 -> 0.79 (docs)
            "stem_depth": 2,
            # class-specific residual attention over the patch tokens (its token scores are the `head` class maps)
            # and local self-attention for the patch tokens: docs/attention_sr.md, "Classifier choice"
            "head": "csra",
            "csra_temperature": 10.0,
            "local_attention": 2,
        },
        "epochs": 25,
        "retrain_epochs": 4,
        "batch_size": 32,
        "lr": 1e-3,
        "warmup": 0.15,  # one-cycle warm-up fraction of the base training
        "grad_clip": 1.0,  # global gradient-norm clip (None: off)
        "retrain_lr": 3e-4,
    },
    # method: the map that selects the regions; localization: every method scored against the finding masks
    # (class-specific ones, head / grad_rollout / gradcam, are scored with the map of the finding's own class)
    # pointing_tolerance: px, or a list (first = primary figure); 8 px at 128 = the pointing game's 15 px at 224
    "attention": {
        "method": "head",
        "pointing_tolerance": [0, 8],
        "localization": ["head", "rollout", "gradcam"],
    },
    "regions": {"k": 3, "percentile": 95.0, "min_size": 32, "max_size": 32, "nms_iou": 0.3, "feather": 4.0},
    # name: bicubic | network | latent_diffusion | diffusers; kwargs go to the sr_backend (latent_diffusion:
    # num_inference_steps, eta, num_samples = samples averaged, see docs/attention_sr.md); train: None, or for
    # `network` {n_images, iterations, batch_size, patch, lr} (default network: region_sr.FAST_SR_NETWORK), for
    # `latent_diffusion` {n_images, patches_per_image, patch, ae_epochs, ae_patch, ae_lr, unet_epochs, batch_size,
    # lr, model}
    "backend": {"name": "bicubic", "kwargs": {}, "train": None},
    # backends: more backends ({name, kwargs, train} like `backend`) trained (cached) and scored on the same regions
    "sr_eval": {"n_images": 16, "backends": []},
    # native_hires: the same classifier (same token grid: patch x factor) trained from scratch for epochs +
    # retrain_epochs on phantom renders at factor x the working size, no SR: what real high-resolution pixels give
    # (n_seeds: run it for the first n seeds only, null = all; it costs about factor**2 x a base training)
    "native_hires": {"enabled": False, "factor": 2, "n_seeds": None},
    "n_boot": 500,
}


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if k not in out:
            raise KeyError(f"run_pipeline: unknown config key {k!r}; valid keys: {sorted(out)}")
        out[k] = (
            _merge(out[k], v) if isinstance(out[k], dict) and isinstance(v, dict) and k != "kwargs" else v
        )
    return out


def _key(*parts: Any) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _tolerances(cfg: dict) -> list[float]:
    """``attention.pointing_tolerance`` as a list of pixel tolerances (a number or a list; the first is primary)."""
    t = cfg["attention"]["pointing_tolerance"]
    tols = [float(x) for x in (t if isinstance(t, (list, tuple)) else [t])]
    if not tols or any(x < 0 for x in tols):
        raise ValueError(
            f"run_pipeline: attention.pointing_tolerance must be a pixel distance >= 0 or a list of them, got {t!r}"
        )
    return tols


def _render(cfg: dict, cache: Path) -> dict[str, Any]:
    """Working-resolution phantom images, labels, masks and patient ids (cached as .npz)."""
    from medgen.data.labels import PHANTOM_LABELS
    from medgen.data.phantom import render_phantom

    d = cfg["data"]
    path = cache / f"phantom_{_key(d['n_images'], d['size'], d['phantom_seed'])}.npz"
    if path.is_file():
        z = np.load(path)
        return {k: z[k] for k in z.files}
    samples = [render_phantom(i, d["size"], d["phantom_seed"]) for i in range(d["n_images"])]
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


def _render_hr(indices: list[int], cfg: dict, data: dict | None = None) -> torch.Tensor:
    """True-HR phantom renders (N, 1, size*scale, size*scale) at quantum-noise factor ``data.hr_noise_scale``;
    on real data (``data`` from :func:`load_pipeline_data`) the native images at that size."""
    from medgen.data.phantom import render_phantom

    d = cfg["data"]
    size = d["size"] * d["scale"]
    if data is not None and data["source"] != "phantom":
        bad = [int(i) for i in indices if not data["hr_ok"][int(i)]]
        if bad:
            raise ValueError(
                f"run_pipeline: {len(bad)} image(s) are below the HR size {size} px (native side < size x scale)"
            )
        return torch.cat([_native(data["files"][int(i)], size) for i in indices])
    noise = float(d.get("hr_noise_scale", 1.0))
    if not 0 <= noise <= 1:
        raise ValueError(
            f"run_pipeline: data.hr_noise_scale must be in [0, 1] (1 = default dose, 0.25 = 16x dose), got {noise}"
        )
    return torch.from_numpy(
        np.stack([render_phantom(int(i), size, d["phantom_seed"], noise_scale=noise).image for i in indices])
    )[:, None]


def _hr_patches(
    indices: list[int], cfg: dict, n_per_image: int, patch: int, seed: int, data: dict | None = None
) -> torch.Tensor:
    """Random HR crops (inside the body mostly: crops of near-constant background are skipped by variance)."""
    rng = np.random.default_rng(seed)
    hr = _render_hr(indices, cfg, data)
    out = []
    for img in hr:
        side, kept = img.shape[-1], 0
        for _ in range(n_per_image * 4):
            y, x = rng.integers(0, side - patch, 2)
            crop = img[:, y : y + patch, x : x + patch]
            if crop.std() > 0.02:
                out.append(crop)
                kept += 1
            if kept == n_per_image:
                break
    return torch.stack(out)


def _fit_sr_network(
    net: torch.nn.Module,
    hr: torch.Tensor,
    scale: int,
    iterations: int,
    lr: float,
    seed: int,
    patch: int = 96,
    batch_size: int = 16,
) -> torch.nn.Module:
    """L1 training of a registered SR network on random (LR = area-downsampled HR, HR) patch pairs cut from the
    whole HR images ``hr`` (N, 1, H, W): MONAI ``SupervisedTrainer``, Adam with a per-iteration cosine decay from
    ``lr`` to ``lr / 1000`` (``LrScheduleHandler``), ``iterations`` batches of ``batch_size``."""
    from monai.engines import SupervisedTrainer
    from monai.handlers import LrScheduleHandler
    from monai.utils import set_determinism

    from medgen.engines.ldm_sr import RandomPatchPairs
    from medgen.handlers.progress import attach_progress

    if iterations < 1:
        raise ValueError(f"run_pipeline: backend.train.iterations must be >= 1, got {iterations}")
    set_determinism(seed)
    data = RandomPatchPairs(hr, patch, scale, iterations * batch_size, seed)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=iterations, eta_min=lr * 1e-3)
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=loader,
        network=net.train(),
        optimizer=opt,
        loss_function=torch.nn.L1Loss(),
        train_handlers=[LrScheduleHandler(cosine, print_lr=False, epoch_level=False)],
        decollate=False,
    )
    attach_progress(trainer, "region SR network").run()
    return net.eval()


def _build_backend(cfg: dict, cache: Path, train_idx: list[int], data: dict | None = None) -> Any:
    """The configured ``sr_backend``; ``backend.train`` trains a latent-diffusion or network backend (cached) on
    the true HR (phantom renders, or the native training images that are at least ``size * scale``)."""
    from medgen.inferers.region_sr import LatentDiffusionBackend, NetworkBackend, create_sr_backend

    b, scale = cfg["backend"], cfg["data"]["scale"]
    name, kwargs, train = b["name"], dict(b.get("kwargs") or {}), b.get("train")
    if name == "network" and "network" not in kwargs:
        from medgen.inferers.region_sr import FAST_SR_NETWORK

        kwargs = copy.deepcopy(FAST_SR_NETWORK) | kwargs
    if not train:
        return create_sr_backend(name, **kwargs)
    if data is not None and data["source"] != "phantom":
        train_idx = [i for i in train_idx if data["hr_ok"][i]]
        if not train_idx:
            raise ValueError(
                f"run_pipeline: backend.train needs high-resolution training images, but no training image of "
                f"{data['source']} is at least {cfg['data']['size'] * scale} px (data.size x data.scale) natively; "
                "use a backend without training (bicubic, or a network checkpoint) or native-resolution images"
            )
    patch = int(train.get("patch", 64))
    n_img = min(int(train.get("n_images", 24)), len(train_idx))
    ckpt = cache / f"{name}_{_key(_data_key(cfg), train)}.pt"
    if name == "latent_diffusion":
        from medgen.engines.ldm_sr import LDMSuperResolution, train_ldm_sr

        mk = dict(train.get("model", {}))
        if ckpt.is_file():
            return LatentDiffusionBackend(checkpoint=ckpt, model_kwargs=mk, **kwargs)
        hr = _hr_patches(train_idx[:n_img], cfg, int(train.get("patches_per_image", 32)), patch, 0, data)
        ae_patch = train.get("ae_patch", 32)
        model = train_ldm_sr(
            hr,
            scale=scale,
            ae_epochs=int(train.get("ae_epochs", 25)),
            unet_epochs=int(train.get("unet_epochs", 60)),
            batch_size=int(train.get("batch_size", 32)),
            lr=float(train.get("lr", 1e-3)),
            ae_lr=float(train.get("ae_lr", 1e-3)),
            ae_patch=None if ae_patch is None else int(ae_patch),
            save_path=ckpt,
            model=LDMSuperResolution(scale=scale, **mk),
        )
        return LatentDiffusionBackend(model=model, **kwargs)
    if name == "network":
        import medgen

        if "epochs" in train or "patches_per_image" in train:
            raise ValueError(
                "run_pipeline: backend.train for 'network' samples random patches: use `iterations` (batches, "
                "default 1200) instead of `epochs`/`patches_per_image`"
            )
        ckpt = cache / f"{name}_{_key(_data_key(cfg), train, kwargs)}.pt"
        net = medgen.create_network(kwargs["network"], scale=scale, **kwargs.get("network_kwargs", {}))
        if not ckpt.is_file():
            _fit_sr_network(
                net,
                _render_hr(train_idx[:n_img], cfg, data),
                scale,
                int(train.get("iterations", 1200)),
                float(train.get("lr", 1e-3)),
                0,
                patch=int(train.get("patch", 96)),
                batch_size=int(train.get("batch_size", 16)),
            )
            torch.save(net.state_dict(), ckpt)
        return NetworkBackend(
            kwargs["network"], checkpoint=ckpt, scale=scale, network_kwargs=kwargs.get("network_kwargs")
        )
    raise ValueError(f"backend.train is only supported for 'latent_diffusion' and 'network', not {name!r}")


def _summ(vals: list[float]) -> dict[str, float]:
    a = np.asarray([v for v in vals if v is not None], dtype=np.float64)
    return {
        "mean": float(a.mean()) if a.size else float("nan"),
        "std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
        "n": int(a.size),
    }


def _sr_quality(
    backend: Any,
    base_model: torch.nn.Module,
    test_idx: list[int],
    cfg: dict,
    extra: dict | None = None,
    data: dict | None = None,
) -> dict[str, Any] | None:
    """Backend (and ``extra`` ``{name: backend}``) vs bicubic on attention regions of test images, against the
    true HR phantom (real data: the native test images at least ``size * scale``; None when there are none)."""
    from medgen.engines.ldm_sr import degrade
    from medgen.inferers.attention_sr import AttentionSRPipeline
    from medgen.inferers.region_sr import BicubicBackend
    from medgen.metrics.classification import region_image_quality

    s = cfg["data"]["scale"]
    if data is not None and data["source"] != "phantom":
        test_idx = [i for i in test_idx if data["hr_ok"][i]]
        if not test_idx:
            return None
    idx = test_idx[: cfg["sr_eval"]["n_images"]]
    hr = _render_hr(idx, cfg, data)
    lr = degrade(hr, s)
    r = {k: v for k, v in cfg["regions"].items() if k != "feather"}
    res = {}
    boxes = None
    backends = {"bicubic": BicubicBackend(), cfg["backend"]["name"]: backend, **(extra or {})}
    for name, be in backends.items():
        out = AttentionSRPipeline(
            base_model,
            be,
            scale=s,
            attention=cfg["attention"]["method"],
            feather=cfg["regions"]["feather"],
            **r,
        )(lr, return_scaled=True)
        boxes = [b * s for b in out.boxes]
        q = region_image_quality(out.scaled_images, hr, boxes, shave=s)
        area = float(
            np.mean(
                [((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).sum().item() / hr.shape[-1] ** 2 for b in boxes]
            )
        )
        res[name] = {k: _summ(v) for k, v in q.items()} | {"region_area_share": area}
    return res


def _split(cfg: dict, data: dict[str, Any]) -> tuple[list[int], list[int], list[int]]:
    """Train / validation / test image indices of the patient-level split of the rendered phantom."""
    from medgen.data.split import patient_split

    items = [{"index": i, "patient_id": str(p)} for i, p in enumerate(data["patient_ids"])]
    parts = patient_split(items, cfg["data"]["fractions"], seed=cfg["data"]["phantom_seed"])
    return tuple([it["index"] for it in part] for part in parts)  # type: ignore[return-value]


def _data_key(cfg: dict) -> Any:
    """What identifies the data in cache keys: ``data`` on the phantom (keys as before), + ``dataset`` otherwise."""
    return cfg["data"] if not cfg["dataset"]["dir"] else [cfg["data"], cfg["dataset"]]


def _native(path: str, size: int) -> torch.Tensor:
    """One radiograph file as (1, 1, size, size): the bundle's loader, centred square pad, area resize."""
    from medgen.inferers.attention_sr import pad_square
    from medgen.transforms.io import LoadRadiograph

    x = pad_square(LoadRadiograph()(path)).float()[None]
    return torch.nn.functional.interpolate(x, size=(size, size), mode="area")


def load_pipeline_data(cfg: dict, cache: Path, out_dir: Path) -> dict[str, Any]:
    """The data stage: images, labels and split of the phantom or of a labelled folder, and the ground truth.

    Returns a dict with ``images`` (N, 1, size, size) float32, ``labels`` (N, C), ``label_names``,
    ``patient_ids``, ``split`` (train / val / test index lists), ``source`` (``phantom`` or the reader),
    ``truth`` (``masks``: phantom finding masks; ``boxes``: masks drawn from the dataset's finding boxes;
    ``none``), ``truth_masks(i)`` -> ``{finding: bool (size, size)}``, ``hr`` (what the HR reference is) and,
    on real data, ``files``, ``native_side`` and ``hr_ok`` (native side >= size * scale). ``cfg`` is the merged
    pipeline config.
    """
    from medgen.data.labels import PHANTOM_LABELS

    ds = cfg["dataset"]
    if not ds["dir"]:
        if ds["name"] not in (None, "phantom"):
            raise ValueError(
                f"run_pipeline: dataset.name {ds['name']!r} needs dataset.dir (the folder to read)"
            )
        data = _render(cfg, cache)
        data.update(
            split=_split(cfg, data),
            label_names=list(PHANTOM_LABELS),
            source="phantom",
            truth="masks",
            hr="true high-resolution phantom render",
            info={"dataset": "phantom", "dataset_dir": None},
        )
        data["truth_masks"] = lambda i: {n: data["masks"][i, j] for j, n in enumerate(PHANTOM_LABELS)}
        return data
    return _load_real(cfg, cache, out_dir)


def _load_real(cfg: dict, cache: Path, out_dir: Path) -> dict[str, Any]:
    from medgen.data.datalist import load_datalist
    from medgen.engines.ldm_sr import degrade
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
    files = [str(it["image"]) for it in items]
    if not all(isinstance(it["image"], str | Path) for it in items):
        raise ValueError("run_pipeline: real-data items must give image file paths")
    hr_side = size * scale
    path = cache / f"real_{_key(files, size, scale)}.npz"
    if path.is_file():
        z = np.load(path)
        images, native_side, hw = z["images"], z["native_side"], z["native_hw"]
    else:
        from medgen.transforms.io import LoadRadiograph

        loader, imgs, sides, hws = LoadRadiograph(), [], [], []
        for f in files:
            hw_f = tuple(int(v) for v in loader(f).shape[-2:])
            side = max(hw_f)
            if side >= hr_side:  # LR = the phantom's degradation of the native HR
                img = degrade(_native(f, hr_side), scale)
            else:
                img = _native(f, size)
            imgs.append(img[0].numpy().astype(np.float32))
            sides.append(side)
            hws.append(hw_f)
        images, native_side, hw = np.stack(imgs), np.asarray(sides), np.asarray(hws)
        np.savez_compressed(path, images=images, native_side=native_side, native_hw=hw)
    has_boxes = any("boxes" in it for it in items)
    box_masks: dict[int, dict[str, np.ndarray]] = {}
    if has_boxes:
        for i, it in enumerate(items):
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


def _train_base_classifier(
    cfg: dict,
    images: torch.Tensor,
    labels: torch.Tensor,
    seed: int,
    kwargs: dict | None = None,
    epochs: int | None = None,
    progress: bool = True,
    names: list[str] | None = None,
) -> torch.nn.Module:
    """The configured classifier built and trained from scratch on ``images`` for ``seed``.

    torch is seeded before the network is built, so the initial weights belong to the seed too.
    """
    import medgen
    from medgen.data.labels import PHANTOM_LABELS
    from medgen.engines.classifier import train_classifier

    c = cfg["classifier"]
    torch.manual_seed(seed)
    net = medgen.create_network(
        c["name"], labels=names or PHANTOM_LABELS, **(c["kwargs"] if kwargs is None else kwargs)
    )
    return train_classifier(
        net,
        images,
        labels,
        epochs=c["epochs"] if epochs is None else epochs,
        batch_size=c["batch_size"],
        lr=c["lr"],
        warmup=c.get("warmup", 0.15),
        grad_clip=c.get("grad_clip", 1.0),
        seed=seed,
        device=cfg["device"],
        progress=progress,
    )


@torch.no_grad()
def _val_loss(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float | None:
    """Mean binary cross-entropy (no class weights) of ``model`` on the validation patients' images."""
    from medgen.engines.classifier import predict_probabilities

    if len(images) == 0:
        return None
    p = predict_probabilities(model, images).clamp(1e-7, 1 - 1e-7)
    return float(torch.nn.functional.binary_cross_entropy(p, labels.float()))


def _native_hires_arm(
    cfg: dict,
    cache: Path,
    tr: list[int],
    va: list[int],
    te: list[int],
    seed: int,
    rep_kw: dict,
    data: dict | None = None,
) -> tuple[dict[str, Any], float | None]:
    """The native-resolution baseline: the classifier trained on ``factor`` x renders of the same studies.

    Same architecture and token grid (patch and image size both x ``factor``), from scratch for ``epochs +
    retrain_epochs`` (the total the other arms get), evaluated on the same test patients.
    """
    from medgen.data.labels import PHANTOM_LABELS
    from medgen.engines.classifier import predict_probabilities
    from medgen.metrics.classification import classification_report

    f = int(cfg["native_hires"]["factor"])
    if f < 2:
        raise ValueError(f"run_pipeline: native_hires.factor must be an integer >= 2, got {f}")
    hi_cfg = copy.deepcopy(cfg)
    hi_cfg["data"]["size"] = cfg["data"]["size"] * f
    names = list(PHANTOM_LABELS)
    if data is not None and data["source"] != "phantom":
        side = cfg["data"]["size"] * f
        small = int((data["native_side"] < side).sum())
        if small:
            raise ValueError(
                f"run_pipeline: native_hires trains on the native images at {side} px (data.size x "
                f"native_hires.factor), but {small} of {len(data['files'])} images are smaller natively; disable "
                "native_hires or use native-resolution images"
            )
        names = data["label_names"]
        images = torch.cat([_native(p, side) for p in data["files"]])
        labels = torch.from_numpy(data["labels"])
    else:
        data = _render(hi_cfg, cache)
        images, labels = torch.from_numpy(data["images"]), torch.from_numpy(data["labels"])
    c = cfg["classifier"]
    kw = dict(c["kwargs"])
    kw["img_size"] = kw.get("img_size", cfg["data"]["size"]) * f
    kw["patch_size"] = kw.get("patch_size", 16) * f
    net = _train_base_classifier(
        cfg, images[tr], labels[tr], seed, kwargs=kw, epochs=c["epochs"] + c["retrain_epochs"], names=names
    )
    rep = classification_report(
        labels[te].numpy(),
        predict_probabilities(net, images[te]).numpy(),
        names,
        seed=seed,
        **rep_kw,
    )
    return rep, _val_loss(net, images[va], labels[va])


def run_pipeline(config: dict | None = None) -> dict[str, Any]:
    """Run the experiment described in the module docstring; returns the report dict (also written to disk).

    Args:
        config: overrides of :data:`DEFAULT_CONFIG` (nested dicts merge; unknown keys raise).
    """
    from tqdm.auto import tqdm

    from medgen.engines.classifier import predict_probabilities, train_classifier
    from medgen.inferers.attention import (
        CLASS_METHODS,
        compute_attention_maps,
        compute_class_attention_maps,
    )
    from medgen.inferers.attention_sr import AttentionSRPipeline
    from medgen.metrics.classification import classification_report
    from medgen.metrics.localization import localization_report
    from medgen.networks.nets.vit_classifier import save_classifier_checkpoint
    from medgen.visualize.attention import save_attention_overlay

    cfg = _merge(DEFAULT_CONFIG, config or {})
    tols = _tolerances(cfg)
    wants_head = "head" in [cfg["attention"]["method"], *cfg["attention"]["localization"]]
    if wants_head and cfg["classifier"]["kwargs"].get("head") != "csra":
        raise ValueError(
            "run_pipeline: the attention map 'head' (attention.method / attention.localization) reads the class "
            "token scores of a classifier built with classifier.kwargs.head: csra; set that, or use rollout / "
            "grad_rollout / gradcam maps"
        )
    out_dir = Path(cfg["output_dir"])
    cache = Path(cfg["cache_dir"] or out_dir / "cache")
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    seeds = list(cfg["seeds"])
    hires = cfg["native_hires"]
    hires_seeds = seeds[: hires["n_seeds"]] if hires["enabled"] and hires.get("n_seeds") else seeds
    hires_seeds = hires_seeds if hires["enabled"] else []
    bar = tqdm(total=2 + 4 * len(seeds) + len(hires_seeds), desc="attention-SR pipeline", unit="stage")

    data = load_pipeline_data(cfg, cache, out_dir)
    tr, va, te = data["split"]
    names, real = data["label_names"], data["source"] != "phantom"
    if not te:
        raise ValueError("run_pipeline: the test split is empty; give more patients or change data.fractions")
    images = torch.from_numpy(data["images"])
    labels = torch.from_numpy(data["labels"])
    groups = [str(data["patient_ids"][i]) for i in te]
    bar.update(1)
    backend = _build_backend(cfg, cache, tr, data if real else None)
    bar.update(1)

    c, r = cfg["classifier"], cfg["regions"]
    region_kwargs = {k: v for k, v in r.items() if k != "feather"}
    rep_kw = dict(n_boot=cfg["n_boot"], groups=groups)
    per_seed: list[dict[str, Any]] = []
    sr_quality, sr_done = None, False
    for seed in seeds:
        bar.set_postfix(seed=seed)
        net = _train_base_classifier(cfg, images[tr], labels[tr], seed, names=names)
        save_classifier_checkpoint(out_dir / f"classifier_base_seed{seed}.pt", net, seed=seed)
        val_loss = {"base": _val_loss(net, images[va], labels[va])}
        base = classification_report(
            labels[te].numpy(),
            predict_probabilities(net, images[te]).numpy(),
            names,
            seed=seed,
            **rep_kw,
        )
        bar.update(1)

        _, maps = compute_attention_maps(net, images[te], method=cfg["attention"]["method"])
        masks = [data["truth_masks"](i) for i in te]
        loc = {}
        scored = (
            [cfg["attention"]["method"], *cfg["attention"]["localization"]] if data["truth"] != "none" else []
        )
        for method in dict.fromkeys(scored):  # no localisation ground truth: nothing to score
            if method in CLASS_METHODS:
                _, m = compute_class_attention_maps(net, images[te], method=method)
                lab = names
            else:
                m = (
                    maps
                    if method == cfg["attention"]["method"]
                    else compute_attention_maps(net, images[te], method)[1]
                )
                lab = None
            reports = [localization_report(m, masks, tolerance=t, labels=lab) for t in tols]
            loc[method] = reports[0]  # the primary tolerance's full report (per finding too)
            loc[method]["pointing_game_at"] = {
                f"{t:g}": r["overall"]["pointing_game"] for t, r in zip(tols, reports)
            }
            loc[method]["uniform_pointing_at"] = {
                f"{t:g}": r["overall"]["uniform_pointing_baseline"] for t, r in zip(tols, reports)
            }
        enh_path = (
            cache / f"enhanced_{_key(_data_key(cfg), c, r, cfg['backend'], cfg['attention'], seed)}.npy"
        )
        if enh_path.is_file():
            enhanced = torch.from_numpy(np.load(enh_path))
            boxes_te = None
        else:
            pipe = AttentionSRPipeline(
                net,
                backend,
                scale=cfg["data"]["scale"],
                attention=cfg["attention"]["method"],
                feather=r["feather"],
                **region_kwargs,
            )
            enhanced, all_boxes = images.clone(), {}
            for i0 in range(0, len(images), 64):
                o = pipe(images[i0 : i0 + 64])
                enhanced[i0 : i0 + 64] = o.images
                all_boxes.update({i0 + j: b for j, b in enumerate(o.boxes)})
            np.save(enh_path, enhanced.numpy())
            boxes_te = [all_boxes[i] for i in te]
        if seed == seeds[0]:
            show = te[:6]
            b_show = boxes_te[:6] if boxes_te is not None else None
            size = images.shape[-1]
            union = [
                np.any(
                    [np.asarray(m, bool) for m in data["truth_masks"](i).values()]
                    or [np.zeros((size, size), bool)],
                    0,
                )
                for i in show
            ]
            save_attention_overlay(
                images[show],
                maps[:6],
                out_dir / "figures" / "attention_overlay.png",
                boxes=b_show,
                masks=union if data["truth"] != "none" else None,
                titles=[
                    ", ".join(n for n, y in zip(names, data["labels"][i]) if y)[:28] or "no finding"
                    for i in show
                ],
            )
            np.savez_compressed(
                out_dir / "figure_arrays.npz",
                images=images[show].numpy(),
                maps=maps[:6].numpy(),
                masks=np.stack(union),
                boxes=np.stack([np.pad(b.numpy(), ((0, r["k"] - len(b)), (0, 0))) for b in b_show])
                if b_show
                else np.zeros((len(show), 1, 4)),
            )
        bar.update(1)

        enh_net = copy.deepcopy(net)
        train_classifier(
            enh_net,
            enhanced[tr],
            labels[tr],
            epochs=c["retrain_epochs"],
            batch_size=c["batch_size"],
            lr=c["retrain_lr"],
            seed=seed,
            device=cfg["device"],
        )
        val_loss["enhanced_retrained"] = _val_loss(enh_net, enhanced[va], labels[va])
        enh = classification_report(
            labels[te].numpy(),
            predict_probabilities(enh_net, enhanced[te]).numpy(),
            names,
            seed=seed,
            **rep_kw,
        )
        bar.update(1)
        ctl_net = copy.deepcopy(net)
        train_classifier(
            ctl_net,
            images[tr],
            labels[tr],
            epochs=c["retrain_epochs"],
            batch_size=c["batch_size"],
            lr=c["retrain_lr"],
            seed=seed,
            device=cfg["device"],
        )
        val_loss["native_retrained"] = _val_loss(ctl_net, images[va], labels[va])
        ctl = classification_report(
            labels[te].numpy(),
            predict_probabilities(ctl_net, images[te]).numpy(),
            names,
            seed=seed,
            **rep_kw,
        )
        arms = {"base": base, "enhanced_retrained": enh, "native_retrained": ctl}
        if seed in hires_seeds:
            bar.update(1)
            arms["native_hires"], val_loss["native_hires"] = _native_hires_arm(
                cfg, cache, tr, va, te, seed, rep_kw, data if real else None
            )
        for name, rep in arms.items():
            rep["val_loss"] = val_loss[name]
        if not sr_done:
            sr_done = True
            extra = {}
            for b in cfg["sr_eval"]["backends"]:
                b = _merge({"name": "bicubic", "kwargs": {}, "train": None}, b)
                extra[b["name"]] = _build_backend({**cfg, "backend": b}, cache, tr, data if real else None)
            sr_quality = _sr_quality(backend, net, te, cfg, extra, data if real else None)
        bar.update(1)
        per_seed.append(
            {
                "seed": seed,
                **arms,
                "localization": loc,
                "mean_abs_change_enhanced": float((enhanced[te] - images[te]).abs().mean()),
            }
        )
    bar.close()

    arms = ("base", "native_retrained", "enhanced_retrained") + (("native_hires",) if hires_seeds else ())
    summary = {
        arm: {
            "mean_auroc": _summ([s[arm]["mean_auroc"] for s in per_seed if arm in s]),
            "elementwise_accuracy": _summ([s[arm]["accuracy"]["elementwise"] for s in per_seed if arm in s]),
            "exact_match_accuracy": _summ([s[arm]["accuracy"]["exact_match"] for s in per_seed if arm in s]),
            "macro_f1": _summ([s[arm]["macro_f1"] for s in per_seed if arm in s]),
            "val_loss": _summ([s[arm]["val_loss"] for s in per_seed if arm in s]),
            "per_class_auroc": {
                n: _summ([s[arm]["per_class"][n]["auroc"] for s in per_seed if arm in s]) for n in names
            },
            "seeds": [s["seed"] for s in per_seed if arm in s],
        }
        for arm in arms
    }
    summary["all_negative_accuracy"] = per_seed[0]["base"]["all_negative_accuracy"]
    summary["localization"] = {
        method: {
            **{
                k: _summ([s["localization"][method]["overall"].get(k) for s in per_seed])
                for k in ("pointing_game", "mass_share", "uniform_baseline")
            },
            **{
                key: {
                    t: _summ([s["localization"][method][key][t] for s in per_seed])
                    for t in per_seed[0]["localization"][method][key]
                }
                for key in ("pointing_game_at", "uniform_pointing_at")
            },
        }
        for method in per_seed[0]["localization"]
    }
    summary["auroc_gain_enhanced_minus_native"] = _summ(
        [s["enhanced_retrained"]["mean_auroc"] - s["native_retrained"]["mean_auroc"] for s in per_seed]
    )
    report = {
        "config": cfg,
        "summary": summary,
        "sr_quality": sr_quality,
        "per_seed": per_seed,
        "n_train": len(tr),
        "n_val": len(va),
        "n_test": len(te),
        "n_test_patients": len(set(groups)),
        "data": {
            **data["info"],
            "localization_truth": data["truth"],
            "hr_reference": data["hr"],
            "labels": names,
            "n_images": len(images),
        },
        "runtime_s": time.time() - t0,
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=1, default=float))
    (out_dir / "report.md").write_text(_markdown(report))
    print(f"attention-SR report: {out_dir / 'report.md'} (+ report.json); figures: {out_dir / 'figures'}")
    return report


def _markdown(rep: dict[str, Any]) -> str:
    s, cfg = rep["summary"], rep["config"]

    tols = _tolerances(cfg)

    def pm(d: dict) -> str:
        return f"{d['mean']:.3f} ± {d['std']:.3f}"

    data = rep.get("data") or {"dataset": "phantom", "localization_truth": "masks"}
    real = data["dataset"] != "phantom"
    where = (
        f"Data: {data['dataset']} ({data['dataset_dir']}), {data['n_images']} images at {cfg['data']['size']} px"
        if real
        else f"Phantom: {cfg['data']['n_images']} images at {cfg['data']['size']} px"
    )
    lines = [
        "# Attention-guided SR classifier: report",
        "",
        f"{where}, {rep['n_train']} train / {rep['n_test']} test "
        f"images ({rep['n_test_patients']} test patients, patient-level split); seeds {cfg['seeds']}; SR backend "
        f"`{cfg['backend']['name']}` x{cfg['data']['scale']}, k={cfg['regions']['k']} regions; runtime {rep['runtime_s']:.0f} s.",
        "",
        "| arm | mean AUROC | element-wise acc. | exact-match acc. | macro F1 | validation loss |",
        "|---|---|---|---|---|---|",
    ]
    arms = [a for a in ("base", "native_retrained", "enhanced_retrained", "native_hires") if a in s]
    for arm in arms:
        a = s[arm]
        label = arm if len(a["seeds"]) == len(cfg["seeds"]) else f"{arm} (seeds {a['seeds']})"
        lines.append(
            f"| {label} | {pm(a['mean_auroc'])} | {pm(a['elementwise_accuracy'])} | {pm(a['exact_match_accuracy'])} "
            f"| {pm(a['macro_f1'])} | {pm(a['val_loss'])} |"
        )
    neg = s["all_negative_accuracy"]
    lines += [
        f"| all-negative predictor | 0.5 | {neg['elementwise']:.3f} | {neg['exact_match']:.3f} | 0 | |",
        "",
        "Per-class AUROC (mean ± std over seeds):",
        "",
        "| finding | " + " | ".join(arms) + " |",
        "|---|" + "---|" * len(arms),
    ]
    for n in s["base"]["per_class_auroc"]:
        lines.append(f"| {n} | " + " | ".join(pm(s[a]["per_class_auroc"][n]) for a in arms) + " |")
    lines += [
        "",
        "Arms: `base` = classifier after the base epochs; `native_retrained` / `enhanced_retrained` = the base "
        "fine-tuned for the same epochs on the native / region-enhanced images (enhanced arm also tested on enhanced "
        "images); `native_hires` (when enabled) = the same classifier trained on renders at "
        f"x{cfg['native_hires']['factor']} resolution without SR. Validation loss: unweighted BCE on the validation "
        "patients.",
        "",
        f"Enhanced minus native-retrained mean AUROC: {pm(s['auroc_gain_enhanced_minus_native'])} (mean ± std over seeds; "
        "per-seed 95% patient-level bootstrap CIs in report.json).",
        "",
    ]
    if real:
        lines += [
            "",
            f"Real data: the HR reference is the {data['hr_reference']}; the classifier's input is its area "
            f"downsampling by {cfg['data']['scale']} (the phantom's degradation). Labels: {', '.join(data['labels'])}. "
            "A small test set gives wide (or undefined, NaN) AUROC: read the CIs in report.json.",
        ]
    if data["localization_truth"] == "none":
        lines += [
            "",
            "## Attention localisation",
            "",
            "There is no localisation ground truth in this dataset (no finding masks, no finding bounding boxes): the "
            "attention maps select the regions but their localisation is not scored. Datasets with boxes (NIH "
            "ChestX-ray14 with `BBox_List_2017.csv`, dataset.kwargs `{with_boxes: true}`) are scored.",
        ]
    else:
        truth = "finding bounding boxes drawn as masks" if data["localization_truth"] == "boxes" else "masks"
        lines += [
            "",
            f"## Attention localisation (test findings with {truth})",
            "",
            "| map | "
            + " | ".join(f"pointing game, tolerance {t:g} px" for t in tols)
            + " | attention mass inside mask | uniform-map baseline |",
            "|---|" + "---|" * (len(tols) + 2),
            *[
                f"| {m}{' (selects the regions)' if m == cfg['attention']['method'] else ''} | "
                + " | ".join(
                    f"{pm(x)} (uniform {v['uniform_pointing_at'][t]['mean']:.3f})"
                    for t, x in v["pointing_game_at"].items()
                )
                + f" | {pm(v['mass_share'])} | {pm(v['uniform_baseline'])} |"
                for m, v in s["localization"].items()
            ],
            "",
            "Pointing game: a hit when the map's maximum lies inside the finding's mask, or within the tolerance of it "
            "(Zhang et al., ECCV 2016, used 15 px on ~224-px images; 8 px is that at 128 px). Class-specific maps "
            "(head, grad_rollout, gradcam) are scored with the map of the finding's own class, class-agnostic ones "
            "(rollout, cls) with the image's single map.",
        ]
    lines += [
        "",
        "## Region SR quality against the "
        + ("native-resolution image" if real else "true high-resolution phantom"),
        "",
        "| backend | region PSNR (dB) | region SSIM | whole-image PSNR (dB) | region area share |",
        "|---|---|---|---|---|",
    ]
    if rep["sr_quality"] is None:
        lines.append(
            f"| (not scored: no test image is at least {cfg['data']['size'] * cfg['data']['scale']} px natively) "
            "| | | | |"
        )
    for name, q in (rep["sr_quality"] or {}).items():
        lines.append(
            f"| {name} | {pm(q['region_psnr'])} | {pm(q['region_ssim'])} | {pm(q['image_psnr'])} | {q['region_area_share']:.3f} |"
        )
    lines += [
        "",
        "Whole-image PSNR mostly measures the bicubic background; read the region columns.",
        "",
        "![attention](figures/attention_overlay.png)",
        "",
    ]
    return "\n".join(lines)
